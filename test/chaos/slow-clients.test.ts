/**
 * Slow clients against the engine in its own process (real uWS, workers, onnxruntime):
 *
 * - Clients trickling their headers, or a body, one byte at a time are timed out by uWS's own
 *   idle rule (a connection with no complete request, or a body arriving slower than 16 KB/s, is
 *   closed after about 10 s), hold no batch slot (rows are queued only once a body is whole) and
 *   do not stop anyone else from being served meanwhile.
 * - Clients that send requests and never read the answers do not grow the engine's memory: an
 *   answer the socket does not take stays pending (tryEnd), and uWS closes a connection that sends
 *   another request meanwhile. Before, uWS buffered every unread answer: 0.55 MiB per 4096-row
 *   prediction, and 3.6 KB per pipelined 40-byte GET /monitoring/system/info.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logProblems, startEngine, stopEngine, type EngineProc } from '../../bench/lib/engine-proc';
import { makeRows, postJson, request } from '../helpers/engine';
import { established } from '../helpers/raw-http';

const F = 16;
/** How long a timed-out connection may take to be closed before the test calls it a hang. */
const CLOSE_BOUND_MS = 40_000;
/** Bound on the engine's RSS growth while clients never read (what uWS used to buffer is several times this). */
const RSS_GROWTH_BOUND = 64 * 1024 * 1024;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const MiB = (n: number): string => (n / 2 ** 20).toFixed(1);

interface Trickle {
  name: string;
  /** Sent at once. */
  head: string;
  /** Sent one byte at a time. */
  rest: string;
}

interface Trickled {
  name: string;
  closedAfterMs: number;
  trickledBytes: number;
  answer: string;
}

const rowBody = (): string => JSON.stringify({ features: Array.from(makeRows(1, F, 5), (v) => Math.round(v * 1000) / 1000) });

function trickles(): Trickle[] {
  const predict = rowBody();
  const learn = predict.slice(0, -1) + ',"label":1}';
  const pad = ' '.repeat(200);
  return [
    { name: 'headers of a prediction', head: '', rest: `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${predict.length}\r\n\r\n${predict}` },
    { name: 'body of a prediction', head: `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${predict.length}\r\n\r\n`, rest: predict },
    { name: 'body of a feedback', head: `POST /learn HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${learn.length}\r\n\r\n`, rest: learn },
    { name: 'body of a drift update', head: `POST /monitoring/drift/update?prediction=1&actual=0 HTTP/1.1\r\nHost: x\r\nContent-Length: ${pad.length}\r\n\r\n`, rest: pad },
    { name: 'body of a GET (answered once it ends)', head: `GET /models HTTP/1.1\r\nHost: x\r\nContent-Length: ${pad.length}\r\n\r\n`, rest: pad },
    { name: 'body of a refused request (lingering)', head: `POST /no/such/path HTTP/1.1\r\nHost: x\r\nContent-Length: ${pad.length}\r\n\r\n`, rest: pad },
    { name: 'chunked body of a prediction', head: 'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', rest: `${predict.length.toString(16)}\r\n${predict}\r\n0\r\n\r\n` },
  ];
}

/** Sends `t.head`, then one byte of `t.rest` every `everyMs` until the engine closes the connection. */
function trickle(port: number, t: Trickle, everyMs: number, startedAt: number): Promise<Trickled> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let answer = '';
    let i = 0;
    let timer: NodeJS.Timeout | null = null;
    const bound = setTimeout(() => {
      s.destroy();
      reject(new Error(`${t.name}: still open after ${CLOSE_BOUND_MS} ms (${i} bytes trickled)`));
    }, CLOSE_BOUND_MS);
    s.setEncoding('latin1');
    s.on('data', (d: string) => (answer += d));
    s.on('error', () => {
      /* a reset is a close too */
    });
    s.on('connect', () => {
      if (t.head) s.write(t.head);
      timer = setInterval(() => {
        if (i < t.rest.length) s.write(t.rest[i++]!);
      }, everyMs);
    });
    s.on('close', () => {
      if (timer) clearInterval(timer);
      clearTimeout(bound);
      resolve({ name: t.name, closedAfterMs: Date.now() - startedAt, trickledBytes: i, answer });
    });
  });
}

/** Answers the engine has counted for `endpoint` (any status). */
async function answersFor(port: number, endpoint: string): Promise<number> {
  const text = (await request(port, 'GET', '/monitoring/metrics')).body.toString('utf8');
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('api_requests_total{') && line.includes(`endpoint="${endpoint}"`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/**
 * Polls until `done()` or the connection is closed; a hang past `boundS` fails the test. The
 * bound is a failure timeout, not a measure: uWS closes a connection that makes no write progress
 * for about 10 s, and on a loaded machine its timer sweep and our polling can add as much again.
 */
async function until(done: () => Promise<boolean>, closed: () => boolean, what: string, boundS = 60): Promise<void> {
  const deadline = Date.now() + boundS * 1000;
  while (!closed() && !(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: neither done nor its connection closed within ${boundS} s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('slow clients', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-slow-'));
  let engine: EngineProc;
  let pid: number;

  beforeAll(async () => {
    engine = await startEngine('slow-clients', { WORKERS: '1', CACHE_CAPACITY: '0' }, dir);
    pid = engine.child.proc.pid!;
  });
  afterAll(async () => {
    if (engine) await stopEngine(engine);
    rmSync(dir, { recursive: true, force: true });
  });

  it('times out clients trickling headers or bodies one byte at a time; they hold no batch slot and others are served', async () => {
    const startedAt = Date.now();
    const ts = trickles();
    const pending = ts.map((t) => trickle(engine.port, t, 250, startedAt));
    let open = ts.length;
    void Promise.allSettled(pending).then(() => (open = 0));
    // Meanwhile: other clients are served, and the queue never holds a trickled request's rows.
    const probes = { predictions: 0, served: 0, maxRows: 0, maxInFlight: 0 };
    const row = JSON.parse(rowBody()) as { features: number[] };
    while (open > 0 && Date.now() - startedAt < CLOSE_BOUND_MS) {
      const p = await postJson(engine.port, row);
      probes.predictions++;
      if (p.status === 200) probes.served++;
      const q = (await request(engine.port, 'GET', '/monitoring/health/readiness')).json().queue as { rows: number; in_flight_batches: number };
      probes.maxRows = Math.max(probes.maxRows, q.rows);
      probes.maxInFlight = Math.max(probes.maxInFlight, q.in_flight_batches);
      await new Promise((r) => setTimeout(r, 200));
    }
    const done = await Promise.all(pending);
    for (const d of done) console.log(`slow clients: ${d.name}: closed after ${(d.closedAfterMs / 1000).toFixed(1)} s, ${d.trickledBytes} bytes trickled, answer ${JSON.stringify(d.answer.split('\r\n')[0] ?? '')}`);
    console.log(`slow clients: meanwhile ${probes.served}/${probes.predictions} predictions served; queue rows max ${probes.maxRows}, in-flight batches max ${probes.maxInFlight}`);

    for (const [i, d] of done.entries()) {
      // Timed out, not finished: the request never got all its bytes in.
      expect(d.trickledBytes, d.name).toBeLessThan(ts[i]!.rest.length);
      // Whatever was answered (the refusal, before its linger) starts with a whole status line.
      if (d.answer !== '') expect(d.answer, d.name).toMatch(/^HTTP\/1\.1 404 /);
    }
    expect(probes.predictions).toBeGreaterThan(0);
    expect(probes.served).toBe(probes.predictions);
    expect(probes.maxRows).toBe(0);
    expect(probes.maxInFlight).toBe(0);
  });

  /**
   * Runs `send` on connections that are never read from, opening a new one each time the engine
   * closes one, until `total` requests are sent; returns the engine's RSS peak and how many
   * connections the engine closed.
   */
  async function neverRead(total: number, send: (s: net.Socket, sent: number, closed: () => boolean) => Promise<number>): Promise<{ peak: number; closedByEngine: number }> {
    let sent = 0;
    let closedByEngine = 0;
    let peak = rssOf(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 100);
    try {
      while (sent < total) {
        const s = net.connect(engine.port, '127.0.0.1');
        s.pause();
        s.on('error', () => {
          /* the engine's close of a connection with unread data is a reset */
        });
        await new Promise<void>((resolve, reject) => {
          s.once('connect', resolve);
          s.once('error', reject);
        });
        const ports = [s.localPort!, s.remotePort!] as const;
        let closeSeen = false;
        s.once('close', () => (closeSeen = true));
        const closed = (): boolean => closeSeen || !established(ports[0], ports[1]);
        sent += await send(s, sent, closed);
        if (closed()) closedByEngine++;
        s.destroy();
      }
    } finally {
      clearInterval(sampler);
    }
    return { peak: Math.max(peak, rssOf(pid)), closedByEngine };
  }

  it('a client sending 4096-row predictions and never reading the answers does not grow the engine by them', async () => {
    const rows = makeRows(4096, F, 7);
    const instances: number[][] = [];
    for (let r = 0; r < 4096; r++) instances.push(Array.from(rows.subarray(r * F, (r + 1) * F), (v) => Math.round(v * 1e6) / 1e6));
    const body = JSON.stringify({ instances });
    const req = Buffer.from(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    // Warm: the same requests from a client that reads, so the heap's working size for them is
    // part of the baseline.
    let answerBytes = 0;
    for (let i = 0; i < 30; i++) {
      const warm = await request(engine.port, 'POST', '/predict', body, { 'content-type': 'application/json' });
      expect(warm.status).toBe(200);
      answerBytes = warm.body.length;
    }
    const base = rssOf(pid);
    // Enough never-read answers to be twice the growth bound (asserted below): sized from the answer's
    // length, which shortest float32 printing made smaller.
    const TOTAL = Math.ceil((2.5 * RSS_GROWTH_BOUND) / answerBytes);
    const { peak, closedByEngine } = await neverRead(TOTAL, async (s, already, closed) => {
      let n = 0;
      let answered = await answersFor(engine.port, '/predict');
      // One request at a time, each sent once the engine has answered the previous one: what a
      // pipelining client that waits for nothing looks like, minus uWS's refusal of a request
      // that arrives while the previous answer is still being computed.
      while (!closed() && already + n < TOTAL) {
        s.write(req);
        n++;
        answered++;
        const want = answered;
        await until(async () => (await answersFor(engine.port, '/predict')) >= want, closed, `prediction ${already + n}`);
      }
      return n;
    });
    const growth = peak - base;
    console.log(
      `slow clients: ${TOTAL} 4096-row predictions (answers of ${MiB(answerBytes)} MiB, ${MiB(TOTAL * answerBytes)} MiB in all) never read; ` +
        `${closedByEngine} connections closed by the engine; RSS ${MiB(base)} MiB before, peak ${MiB(peak)} MiB (+${MiB(growth)} MiB)`,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
    expect(TOTAL * answerBytes).toBeGreaterThan(2 * RSS_GROWTH_BOUND);
  });

  it('pipelined GETs whose answers are never read do not grow the engine by them', async () => {
    const one = 'GET /monitoring/system/info HTTP/1.1\r\nHost: x\r\n\r\n';
    const answerBytes = (await request(engine.port, 'GET', '/monitoring/system/info')).body.length;
    const BATCH = 500;
    const batch = Buffer.from(one.repeat(BATCH));
    const TOTAL = 50_000;
    const base = rssOf(pid);
    const before = await answersFor(engine.port, '/monitoring/system/info');
    let written = 0;
    const { peak, closedByEngine } = await neverRead(TOTAL, async (s, already, closed) => {
      let n = 0;
      // Each connection is fed until the engine closes it, the last one too: a last connection
      // holding only the remainder may buffer less than makes uWS drop it, and would then wait
      // for ever on a client that never reads (the count below sees only completed answers).
      while (!closed() && n < TOTAL) {
        const more = s.write(batch);
        n += BATCH;
        written += BATCH;
        if (!more) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              s.off('drain', done);
              s.off('close', done);
              clearInterval(poll);
              resolve();
            };
            // A paused socket sees no close: poll the kernel's view as well.
            const poll = setInterval(() => closed() && done(), 20);
            s.on('drain', done);
            s.on('close', done);
          });
        }
        // Let the engine read (and the close, when it comes, arrive) between batches.
        await new Promise((r) => setTimeout(r, 1));
      }
      // Everything sent on this connection is answered (or the connection closed) before the next.
      const want = before + written;
      await until(async () => (await answersFor(engine.port, '/monitoring/system/info')) >= want, closed, 'the pipelined GETs');
      written = (await answersFor(engine.port, '/monitoring/system/info')) - before;
      return n;
    });
    const growth = peak - base;
    console.log(
      `slow clients: ${TOTAL} pipelined GET /monitoring/system/info (answers of ${answerBytes} B, ${MiB(TOTAL * answerBytes)} MiB in all) never read; ` +
        `${closedByEngine} connections closed by the engine; RSS ${MiB(base)} MiB before, peak ${MiB(peak)} MiB (+${MiB(growth)} MiB)`,
    );
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
    expect(TOTAL * answerBytes).toBeGreaterThan(2 * RSS_GROWTH_BOUND);
  });

  it('is alive, serves and logged nothing fatal afterwards', async () => {
    expect(engine.child.exited).toBe(false);
    expect((await request(engine.port, 'GET', '/monitoring/health/liveness')).status).toBe(200);
    expect((await postJson(engine.port, JSON.parse(rowBody()))).status).toBe(200);
    expect(logProblems(engine, 60)).toEqual([]);
  });
});
