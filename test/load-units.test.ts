/**
 * The load tool's parts on their own: the HTTP response reader on every way a body can end and
 * every way a socket can cut it, the server-side quantile (against Prometheus' histogram_quantile
 * rules), the agreement rule, the command-line parsers, the request shapes, and the open loop's
 * catch-up when its own event loop is blocked (every due request still sent, the lag reported).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startConstantServer } from '../bench/baselines/constant-server';
import { parseExpectation } from '../src/load/alert-watch';
import { runLoad } from '../src/load/driver';
import { ResponseReader, type ParsedResponse } from '../src/load/http-response';
import { durationMs } from '../src/load/prometheus-api';
import { buildRequests, csvRows, generatedRows, RequestCycle } from '../src/load/requests';
import { compareP95, quantileOf, snapshotFromText, windowOf } from '../src/load/server-side';
import { shapeByName } from '../src/load/shapes';
import { parseSweep, stepVerdict } from '../src/load/sweep';
import { formatMs, parseDuration } from '../src/load/units';

function readAll(chunks: Array<string | Buffer>): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  const r = new ResponseReader((x) => out.push(x));
  for (const c of chunks) r.feed(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  return out;
}

/** Every split of `text` into two chunks gives the same responses as the whole. */
function everySplit(text: string): ParsedResponse[] {
  const whole = readAll([text]);
  for (let i = 1; i < text.length; i++) expect(readAll([text.slice(0, i), text.slice(i)]), `split at ${i}`).toEqual(whole);
  return whole;
}

describe('ResponseReader', () => {
  it('reads Content-Length, chunked and empty bodies, keeping the start of error bodies only', () => {
    const ok = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":"xyz"}';
    const err = 'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 47\r\n\r\n{"error":{"code":"QUEUE_FULL","message":"full"}}'.replace('47', '48');
    const chunked = 'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{"err\r\n3\r\nor"\r\n0\r\nX-Trailer: t\r\n\r\n';
    const empty = 'HTTP/1.1 204 No Content\r\n\r\n';
    const got = everySplit(ok + err + chunked + empty);
    expect(got).toEqual([
      { status: 200, body: '', close: false },
      { status: 503, body: '{"error":{"code":"QUEUE_FULL","message":"full"}}', close: false },
      { status: 400, body: '{"error"', close: false },
      { status: 204, body: '', close: false },
    ]);
  });

  it('skips 100 Continue, knows when the server closes, and ends a body delimited by the close', () => {
    expect(everySplit('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')).toEqual([{ status: 200, body: '', close: true }]);
    expect(readAll(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'])).toEqual([{ status: 200, body: '', close: true }]);
    const out: ParsedResponse[] = [];
    const r = new ResponseReader((x) => out.push(x));
    r.feed(Buffer.from('HTTP/1.1 500 Oops\r\n\r\nno length'));
    expect(out).toEqual([]);
    expect(r.end()).toBe(true);
    expect(out).toEqual([{ status: 500, body: 'no length', close: false }]);
  });

  it('says when a close cuts an answer, and refuses what is not HTTP', () => {
    const r = new ResponseReader(() => {});
    r.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    expect(r.end()).toBe(false);
    expect(() => readAll(['SSH-2.0-OpenSSH\r\n\r\n'])).toThrow(/not an HTTP\/1\.x status line/);
    expect(() => readAll(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'])).toThrow(/bad chunk size/);
  });
});

describe('the server-side P95', () => {
  const b = (pairs: Array<[number, number]>) => pairs.map(([le, count]) => ({ le, count }));

  it('interpolates inside the bucket that holds it, as histogram_quantile does', () => {
    // 100 observations: 50 ≤ 1 ms, 90 ≤ 2.5 ms, all ≤ 5 ms.
    const q = quantileOf(b([[0.001, 50], [0.0025, 90], [0.005, 100], [Infinity, 100]]), 0.95);
    expect(q).toMatchObject({ lower: 0.0025, upper: 0.005, count: 100 });
    expect(q.value).toBeCloseTo(0.0025 + 0.0025 * (5 / 10), 12);
    // In the +Inf bucket the answer is the highest finite bound.
    expect(quantileOf(b([[1, 10], [Infinity, 100]]), 0.95)).toMatchObject({ value: 1, lower: 1, upper: Infinity });
    expect(quantileOf(b([[1, 0], [Infinity, 0]]), 0.95).value).toBeNaN();
  });

  it('takes the window as after − before from the engine\'s text, by status', () => {
    const text = (n200: number, n503: number, le1: number) =>
      [
        `api_requests_total{endpoint="/predict",method="POST",status="200"} ${n200}`,
        `api_requests_total{endpoint="/predict",method="POST",status="503"} ${n503}`,
        `api_requests_total{endpoint="/learn",method="POST",status="202"} 7`,
        `api_request_duration_seconds_bucket{endpoint="/predict",method="POST",le="0.001"} ${le1}`,
        `api_request_duration_seconds_bucket{endpoint="/predict",method="POST",le="+Inf"} ${n200 + n503}`,
        `api_request_duration_seconds_bucket{endpoint="/learn",method="POST",le="+Inf"} 7`,
        `ml_cache_requests_total{result="hit"} ${n200 / 10}`,
      ].join('\n');
    const w = windowOf(snapshotFromText(text(10, 0, 10), '/predict'), snapshotFromText(text(110, 5, 60), '/predict'));
    expect(w).toEqual({ buckets: [{ le: 0.001, count: 50 }, { le: Infinity, count: 105 }], byStatus: { '200': 100, '503': 5 }, cacheHits: 10 });
  });

  it('agrees within the bucket width and explains a disagreement from what the client saw', () => {
    const server = { value: 0.0008, lower: 0.0005, upper: 0.001, count: 100 };
    expect(compareP95({ p95Ms: 1.2, waited: 0, late: 0 }, server).agree).toBe(true); // 0.4 ms apart, bucket 0.5 ms wide
    const slow = compareP95({ p95Ms: 30, waited: 12, late: 3 }, server);
    expect(slow.agree).toBe(false);
    expect(slow.explanation).toBe(
      "the client measured time the engine does not see (the engine's own P95 is at most 0.001 s): queueing before the socket, in its backlog or before the engine routes the request; here 12 requests waited for a free connection and 3 were issued more than 1 ms late by the load generator",
    );
    expect(compareP95({ p95Ms: 10, waited: 0, late: 0 }, { value: 0.2, lower: 0.1, upper: 0.25, count: 5 }).explanation).toMatch(/^the engine's window held slower requests than this client's/);
    // Past the highest bound the histogram cannot say: consistent, with the reason it cannot tell.
    const past = compareP95({ p95Ms: 30_000, waited: 0, late: 0 }, { value: 10, lower: 10, upper: Infinity, count: 5 });
    expect(past).toMatchObject({ agree: true, explanation: "the histogram's buckets do not resolve these latencies: its P95 is past its highest bound, 10 s" });
  });
});

describe('command-line values', () => {
  it('parses durations, sweeps, alert expectations and Prometheus durations', () => {
    expect([parseDuration('--d', '10'), parseDuration('--d', '10s'), parseDuration('--d', '250ms'), parseDuration('--d', '500us'), parseDuration('--d', '2m')]).toEqual([10_000, 10_000, 250, 0.5, 120_000]);
    expect(parseDuration('--warmup', '0', true)).toBe(0);
    expect(() => parseDuration('--duration', '0')).toThrow(/--duration must be a duration above 0/);
    expect(() => parseDuration('--duration', '5h')).toThrow(/such as 10s/);
    expect(parseSweep('100,200, 400')).toEqual({ by: 'rate', values: [100, 200, 400] });
    expect(parseSweep('100:500:200')).toEqual({ by: 'rate', values: [100, 300, 500] });
    expect(parseSweep('connections=1,2,4')).toEqual({ by: 'connections', values: [1, 2, 4] });
    expect(() => parseSweep('connections=1.5')).toThrow(/whole numbers/);
    expect(() => parseSweep('1:1000000:1')).toThrow(/at most 100 steps/);
    expect(parseExpectation('HighAPILatency')).toEqual({ name: 'HighAPILatency', state: 'firing' });
    expect(parseExpectation('HighAPILatency=inactive')).toEqual({ name: 'HighAPILatency', state: 'inactive' });
    expect(() => parseExpectation('HighAPILatency=pending')).toThrow();
    expect([durationMs('15s'), durationMs('1m30s'), durationMs('500ms'), durationMs('x')]).toEqual([15_000, 90_000, 500, 0]);
    expect([formatMs(0.0812), formatMs(1.234), formatMs(45.67), formatMs(1500)]).toEqual(['81.2 µs', '1.23 ms', '45.7 ms', '1.50 s']);
  });

  it('sustains a step only under the threshold, with few errors and the rate achieved', () => {
    const step = (p95: number, errors: number, achieved: number) =>
      ({ client: { latencyMs: { p95 }, answered: 1000, failed: 0, errors, askedRate: 100, achievedRate: achieved } }) as Parameters<typeof stepVerdict>[0];
    expect(stepVerdict(step(5, 0, 100), 10)).toBe('');
    expect(stepVerdict(step(10, 0, 100), 10)).toBe('p95 not under the threshold');
    expect(stepVerdict(step(5, 11, 100), 10)).toBe('errors 1.1 %');
    expect(stepVerdict(step(5, 0, 90), 10)).toBe('achieved 90 % of the rate');
  });
});

describe('request shapes and rows', () => {
  const t = { features: 3, rows: 2, model: 'sgd', servedModel: 'sgd' };
  const target = { host: '127.0.0.1', port: 8000 };

  it('builds whole HTTP requests: JSON rows with the model, binary float32 with X-Model, the protocol\'s infer in JSON and binary', () => {
    const data = { rows: Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), count: 4, features: 3, source: 'test' };
    const json = buildRequests(shapeByName('json'), t, data, target).map((b) => b.toString('latin1'));
    expect(json).toHaveLength(2);
    const [head, body] = json[0]!.split('\r\n\r\n') as [string, string];
    expect(head.split('\r\n')).toEqual(['POST /predict HTTP/1.1', 'Host: 127.0.0.1:8000', 'Content-Type: application/json', `Content-Length: ${body.length}`]);
    expect(JSON.parse(body)).toEqual({ instances: [[1, 2, 3], [4, 5, 6]], model: 'sgd' });
    expect(JSON.parse(json[1]!.split('\r\n\r\n')[1]!)).toEqual({ instances: [[7, 8, 9], [10, 11, 12]], model: 'sgd' });
    const one = buildRequests(shapeByName('json'), { ...t, rows: 1, model: null }, data, target)[0]!.toString('latin1');
    expect(JSON.parse(one.split('\r\n\r\n')[1]!)).toEqual({ features: [1, 2, 3] });
    const bin = buildRequests(shapeByName('binary'), t, data, target)[1]!;
    const split = bin.indexOf('\r\n\r\n');
    expect(bin.subarray(0, split).toString('latin1')).toContain('X-Model: sgd\r\nContent-Length: 24');
    const floats = new Float32Array(bin.buffer.slice(bin.byteOffset + split + 4, bin.byteOffset + bin.length));
    expect(Array.from(floats)).toEqual([7, 8, 9, 10, 11, 12]);
    const oip = { ...t, servedModel: 'ensemble', inputName: 'input' };
    const oipJson = buildRequests(shapeByName('oip-json'), oip, data, target)[0]!.toString('latin1');
    expect(oipJson.split('\r\n')[0]).toBe('POST /v2/models/ensemble/infer HTTP/1.1');
    expect(JSON.parse(oipJson.split('\r\n\r\n')[1]!)).toEqual({ inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }], outputs: [{ name: 'probabilities' }] });
    const oipBin = buildRequests(shapeByName('oip-binary'), oip, data, target)[1]!;
    const at = oipBin.indexOf('\r\n\r\n');
    const headerLength = Number(/Inference-Header-Content-Length: (\d+)/.exec(oipBin.subarray(0, at).toString('latin1'))![1]);
    const payload = oipBin.subarray(at + 4);
    expect(JSON.parse(payload.subarray(0, headerLength).toString('utf8')).inputs[0]).toEqual({ name: 'input', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } });
    expect(Array.from(new Float32Array(payload.buffer.slice(payload.byteOffset + headerLength, payload.byteOffset + payload.length)))).toEqual([7, 8, 9, 10, 11, 12]);
    const cycle = new RequestCycle(['a', 'b'].map((s) => Buffer.from(s)));
    expect([cycle.next(), cycle.next(), cycle.next()].map(String)).toEqual(['a', 'b', 'a']);
  });

  it('reads a CSV\'s feature columns and refuses rows of the wrong width for the model', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-load-csv-'));
    try {
      const file = path.join(dir, 'rows.csv');
      writeFileSync(file, 'date,a,b,c,class\n2020,1,2,3,UP\n2021,4,5,6,DOWN\n');
      const rows = await csvRows(file, 'class', ['date']);
      expect(rows).toMatchObject({ count: 2, features: 3 });
      expect(Array.from(rows.rows)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(() => buildRequests(shapeByName('json'), { ...t, features: 16 }, rows, target)).toThrow(/has 3 features per row; the served model sgd takes 16/);
      expect(() => buildRequests(shapeByName('json'), { ...t, rows: 5 }, rows, target)).toThrow(/--rows 5: .* has only 2 rows/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the open loop when the tool itself stalls', () => {
  it('still sends every request due (catching up) and reports how late it was', async () => {
    const server = await startConstantServer();
    try {
      const target = { host: '127.0.0.1', port: server.port };
      const requests = new RequestCycle(buildRequests(shapeByName('json'), { features: 4, rows: 1, model: null, servedModel: null }, generatedRows(4, 100, 1), target));
      const BLOCK_MS = 150;
      // Half-way through, this process's event loop is blocked: the tool cannot send on time.
      setTimeout(() => {
        const until = performance.now() + BLOCK_MS;
        while (performance.now() < until);
      }, 500);
      const r = await runLoad({ target, requests, connections: 4, mode: 'open', rate: 400, warmupMs: 0, durationMs: 1000, timeoutMs: 10_000, keepSamples: false });
      const m = r.measured;
      expect(m.sent).toBe(400);
      expect(m.answered).toBe(400);
      // The ~60 requests due during the block went out after it, each counted from its due time.
      expect(m.late).toBeGreaterThanOrEqual(30);
      expect(m.maxLateMs).toBeGreaterThanOrEqual(BLOCK_MS / 2);
      expect(m.latencyUs.maxValue / 1000).toBeGreaterThanOrEqual(BLOCK_MS / 2);
    } finally {
      server.close();
    }
  });
});

describe('connections the server closes', () => {
  it('reopens a keep-alive connection closed while idle and never sends on a closed one', async () => {
    // Answers each request, then closes the connection after 200 ms of silence (an idle timeout).
    const server = net.createServer((socket) => {
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => socket.end(), 200);
      };
      arm();
      socket.on('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        arm();
      });
      socket.on('error', () => {});
      socket.on('close', () => clearTimeout(idle));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const target = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
      const requests = new RequestCycle(buildRequests(shapeByName('json'), { features: 2, rows: 1, model: null, servedModel: null }, generatedRows(2, 10, 1), target));
      // 8 connections at 20/s: the most recently used one carries every request (it never idles
      // 200 ms); the others are closed while idle and reopened, and none is sent on while closing.
      const r = await runLoad({ target, requests, connections: 8, mode: 'open', rate: 20, warmupMs: 0, durationMs: 1500, timeoutMs: 5000, keepSamples: false });
      expect(r.measured.sent).toBe(30);
      expect(r.measured.answered + r.measured.failed).toBe(30);
      expect(r.reconnects).toBeGreaterThan(0);
      expect(r.measured.answered).toBe(30);
    } finally {
      server.close();
    }
  });
});
