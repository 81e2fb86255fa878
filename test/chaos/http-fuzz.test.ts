/**
 * Chaos, "Bodies and requests": 10,000 fuzzed bodies spread over every route the router has,
 * then malformed request lines, floods of headers, huge headers, bad chunked encoding and
 * garbage pipelined after a valid request, all from raw sockets against the engine in its own
 * process. Every answer must be well-formed HTTP (a status line that parses, a complete body; our
 * routes' 4xx/5xx carry {"error":{"code","message"}}) or the connection closed; nothing may hang
 * (each request has a generous socket timeout) or crash the engine, which must still be live and
 * serving at the end with no fatal line in its log.
 *
 * Everything is generated from one seed, so a failure names a case that reproduces.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logProblems, startEngine, stopEngine, type EngineProc } from '../../bench/lib/engine-proc';
import { postJson, request, startTestEngine } from '../helpers/engine';
import { errorOf, parseAnswer, rawExchange } from '../helpers/raw-http';
import { rng } from '../../bench/lib/bodies';

const SEED = 20261201;
const BODIES = 10_000;
const IN_FLIGHT = 24;
/** A request still unanswered and open after this is a hang. */
const REQUEST_TIMEOUT_MS = 30_000;
const F = 16;

interface Route {
  method: string;
  template: string;
}

/** Every route the engine's router has, from an engine started in this process for the purpose. */
async function routesOfTheRouter(): Promise<Route[]> {
  const e = await startTestEngine();
  try {
    return e.server.router.routes().sort((a, b) => (a.template + a.method).localeCompare(b.template + b.method));
  } finally {
    await e.shutdown('routes read');
  }
}


class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = rng(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
  num(): string {
    return (this.next() * 4 - 2).toFixed(this.int(0, 7));
  }
  row(n = F): string[] {
    return Array.from({ length: n }, () => this.num());
  }
}

const ODD_NUMBERS = ['1e309', '-1e309', '1e39', '-3.5e38', '123456789012345678901234567890123456789', '0.' + '0'.repeat(400) + '1', '1' + '0'.repeat(400), '-0', '1e-400', '0x10', '+1', '.5', '5.', '01', '1_000', '\u22121', '1e', '--1', '1.2.3', '١'];
const NON_NUMBERS = ['NaN', 'Infinity', '-Infinity', 'nan', 'inf', 'null', 'undefined', 'true', '"1"', '{}', '[]', '"NaN"'];
const ODD_STRINGS = ['"\\ud800"', '"\\udfff"', '"\\u0000"', '"😀✓é"', '"\u2028"', '"\\x41"', '"\\q"', `"${'x'.repeat(70_000)}"`, '"\uFEFF"', '"a\u0000b"'];

/** One fuzzed JSON (or not) body, as text, and a note of what kind it is. */
function jsonBody(g: Gen): { kind: string; text: string } {
  const rows = (n: number): string => '[' + Array.from({ length: n }, () => '[' + g.row().join(',') + ']').join(',') + ']';
  const valid = (): string =>
    g.pick([
      () => `{"features":[${g.row().join(',')}]}`,
      () => `{"instances":${rows(g.int(1, 6))}}`,
      () => `{"features":[${g.row().join(',')}],"label":${g.int(0, 1)}}`,
      () => `{"instances":${rows(2)},"labels":[${g.int(0, 1)},${g.int(0, 1)}]}`,
      () => `{"features":[${g.row().join(',')}],"model":"${g.pick(['ensemble', 'sgd', 'nope'])}","id":"fz-${g.int(0, 1e6)}"}`,
      () => `{"id":"fz-${g.int(0, 50)}","label":${g.int(0, 1)}}`,
      () => `{"force":${g.pick(['true', 'false', '1', '"yes"'])}}`,
      () => `{"path":${g.pick(['"ensemble.onnx.nope"', '"../../etc/passwd"', '"/dev/zero"', '""', '7', '"\\u0000"'])}}`,
      () => {
        // The Open Inference Protocol's request, valid or nearly so.
        const n = g.int(1, 3);
        const data = Array.from({ length: n }, () => g.row().join(',')).join(',');
        const shape = g.pick([`[${n},${F}]`, `[${n * F}]`, `[${n},${F + 1}]`, '[-1,16]', '[]']);
        const type = g.pick(['FP32', 'FP32', 'FP64', 'INT64', 'BYTES', 'fp32', 'BOOL']);
        const params = g.chance(0.3) ? ',"parameters":{"binary_data_output":true}' : '';
        return `{"id":"${g.int(0, 99)}","inputs":[{"name":"${g.pick(['input', 'input', 'x', ''])}","shape":${shape},"datatype":"${type}","data":[${data}]}]${params}}`;
      },
    ])();
  const withValue = (v: string): string => {
    const row = g.row();
    row[g.int(0, F - 1)] = v;
    return g.chance(0.5) ? `{"features":[${row.join(',')}]}` : `{"instances":[[${g.row().join(',')}],[${row.join(',')}]]}`;
  };
  switch (g.int(0, 11)) {
    case 0:
      return { kind: 'valid', text: valid() };
    case 1: {
      const v = valid();
      return { kind: 'truncated', text: v.slice(0, g.int(0, v.length - 1)) };
    }
    case 2: {
      const d = g.pick([10, 100, 1000, 10_000, 100_000]);
      return { kind: `nested-array-${d}`, text: g.chance(0.5) ? '['.repeat(d) + ']'.repeat(d) : `{"features":${'['.repeat(d)}1${']'.repeat(d)}}` };
    }
    case 3: {
      const d = g.pick([10, 1000, 50_000]);
      return { kind: `nested-object-${d}`, text: '{"a":'.repeat(d) + '1' + '}'.repeat(d) };
    }
    case 4:
      return { kind: 'odd-number', text: withValue(g.pick(ODD_NUMBERS)) };
    case 5:
      return { kind: 'non-number', text: withValue(g.pick(NON_NUMBERS)) };
    case 6:
      return {
        kind: 'wrong-type',
        text: g.pick([
          '{"features":"abc"}',
          '{"features":{}}',
          '{"features":null}',
          '{"features":[[1,2]]}',
          '{"instances":[1,2,3]}',
          `{"instances":[[${g.row().join(',')}],"x"]}`,
          `{"features":[${g.row().join(',')}],"label":"1"}`,
          `{"features":[${g.row().join(',')}],"label":2}`,
          `{"instances":[[${g.row().join(',')}]],"labels":{}}`,
          `{"features":[${g.row().join(',')}],"model":7}`,
          `{"features":[${g.row().join(',')}],"id":{}}`,
          `{"features":[${g.row(g.int(0, 40)).join(',')}]}`,
          `{"features":[${g.row().join(',')}],"instances":[]}`,
          `{"features":[${g.row().join(',')}],"features":[1]}`,
          '[]',
          '{}',
          'null',
          '0',
          '""',
          'true',
          '[{"features":[1]}]',
        ]),
      };
    case 7:
      return { kind: 'unicode', text: g.pick([`{"features":[${g.row().join(',')}],"id":${g.pick(ODD_STRINGS)}}`, `{"féatures":[${g.row().join(',')}]}`, `\uFEFF{"features":[${g.row().join(',')}]}`, `{"features":[${g.row().join(',')}],"model":${g.pick(ODD_STRINGS)}}`, `{"features":["１"]}`]) };
    case 8:
      return { kind: 'whitespace', text: g.pick(['', ' ', '\n\t\r ', ' '.repeat(10_000)]) };
    case 9:
      return { kind: 'many-keys', text: '{' + Array.from({ length: g.pick([100, 10_000]) }, (_, i) => `"k${i}":${i}`).join(',') + '}' };
    case 10:
      // Over MAX_BODY_BYTES (256 KiB here) or over MAX_REQUEST_ROWS (1024 here).
      return g.chance(0.5) ? { kind: 'too-large', text: `{"instances":${rows(2000)}}` } : { kind: 'too-many-rows', text: `{"instances":${rows(1025)}}` };
    default:
      return { kind: 'trailing', text: valid() + g.pick([' ', ',', '}', ' {}', 'x', '\u0000']) };
  }
}

/** A fuzzed body (JSON-ish text or binary) with the content type it goes out with. */
function fuzzBody(g: Gen): { kind: string; body: Buffer; type: string | null } {
  const type = (): string | null =>
    g.pick([
      'application/json',
      'application/json',
      'application/json',
      null,
      'application/octet-stream',
      'application/json; charset=utf-8',
      'text/plain',
      'APPLICATION/JSON',
      'application/json;;;',
      'multipart/form-data; boundary=x',
      'x',
      '',
    ]);
  const r = g.next();
  if (r < 0.75) {
    const j = jsonBody(g);
    const body = j.kind === 'unicode' && g.chance(0.3) ? Buffer.concat([Buffer.from(j.text), Buffer.from([0xff, 0xfe, 0xc3])]) : Buffer.from(j.text);
    return { kind: j.kind, body, type: type() };
  }
  if (r < 0.85) {
    const rows = g.int(0, 8);
    const f = new Float32Array(rows * F + (g.chance(0.3) ? g.int(1, 3) : 0));
    for (let i = 0; i < f.length; i++) f[i] = g.chance(0.05) ? g.pick([NaN, Infinity, -Infinity, 3.4e38]) : g.next() * 4 - 2;
    return { kind: 'binary-rows', body: Buffer.from(f.buffer), type: g.chance(0.8) ? 'application/octet-stream' : type() };
  }
  return { kind: 'garbage', body: g.bytes(g.pick([1, 7, 64, 1000, 4096, 70_000])), type: g.pick(['application/json', 'application/octet-stream', null]) };
}

function pathFor(g: Gen, template: string): string {
  let p = template
    .replace('{name}', () => g.pick(['ensemble', 'sgd', 'nope', '%E2%9C%93', 'a%2Fb', '..', '%ZZ', 'x'.repeat(300), '']))
    .replace('{id}', () => g.pick(['nope', '00000000-0000-0000-0000-000000000000', '%00', 'x'.repeat(200)]))
    .replace('{version}', () => g.pick(['1', '0', 'latest', 'x', '-1', '99999999999999999999']));
  if (template === '/monitoring/drift/update' && g.chance(0.7)) p += `?prediction=${g.pick(['0', '1', '2', ''])}&actual=${g.pick(['0', '1', 'x'])}${g.chance(0.3) ? `&proba=${g.pick(['0.3', '1.5', 'NaN', '-0', ''])}` : ''}`;
  else if (g.chance(0.05)) p += '?' + g.pick(['a=1', '%%', 'x=' + 'y'.repeat(1000), '']);
  return p;
}

type Framing = 'close' | 'keep-alive' | 'chunked' | 'short-length' | 'long-length' | 'bad-length';

interface FuzzCase {
  id: number;
  kind: string;
  method: string;
  path: string;
  framing: Framing;
  /** The request's bytes. */
  bytes: Buffer;
  /** Half-close after writing: the request is unfinished on purpose, so nothing can complete it. */
  fin: boolean;
}

function bodyCase(g: Gen, id: number, routes: Route[]): FuzzCase {
  const route = routes[id % routes.length]!;
  let method = route.method;
  let target = pathFor(g, route.template);
  const r = g.next();
  if (r < 0.08) method = g.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'].filter((m) => m !== route.method));
  else if (r < 0.12) target = g.pick(['/nope', '/predict/', '/PREDICT', '/monitoring', '/models/', '//predict', '/predict%00']);
  const { kind, body, type } = fuzzBody(g);
  const framing = g.pick<Framing>(['close', 'close', 'close', 'keep-alive', 'keep-alive', 'chunked', 'short-length', 'long-length', 'bad-length']);
  const head = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1'];
  if (type !== null) head.push(`Content-Type: ${type}`);
  let payload = body;
  let fin = false;
  switch (framing) {
    case 'close':
      head.push('Connection: close', `Content-Length: ${body.length}`);
      break;
    case 'keep-alive':
      head.push(`Content-Length: ${body.length}`);
      break;
    case 'chunked': {
      head.push('Transfer-Encoding: chunked');
      const parts: Buffer[] = [];
      for (let at = 0; at < body.length; ) {
        const n = Math.min(body.length - at, g.int(1, 8192));
        parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(at, at + n), Buffer.from('\r\n'));
        at += n;
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      payload = Buffer.concat(parts);
      break;
    }
    case 'short-length':
      head.push('Connection: close', `Content-Length: ${Math.max(0, body.length - g.int(1, 20))}`);
      break;
    case 'long-length':
      head.push(`Content-Length: ${body.length + g.int(1, 100_000)}`);
      fin = true;
      break;
    case 'bad-length':
      head.push(`Content-Length: ${g.pick(['abc', '-1', '1e3', ' 12', '12 ', '0x10', '99999999999', '', '+5', '1,2'])}`);
      if (g.chance(0.3)) head.push(`Content-Length: ${body.length}`);
      fin = true;
      break;
  }
  return { id, kind, method, path: target, framing, bytes: Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), payload]), fin };
}

/** uWS's own parser refusals: written raw, without Content-Length, and the connection closed. */
const UWS_REFUSALS: Record<string, string> = {
  '400': 'HTTP/1.1 400 Bad Request\r\n\r\n<h1>Bad Request</h1>',
  '431': 'HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n<h1>Request Header Fields Too Large</h1>',
  '505': 'HTTP/1.1 505 HTTP Version Not Supported\r\n\r\n<h1>HTTP Version Not Supported</h1>',
};

interface Outcome {
  /** '200', '404', ... for our answers (first answer on the connection); 'uws-400' for uWS's parser; 'closed' for no answer. */
  first: string;
  answers: number;
  problem: string | null;
}

/**
 * Checks everything the engine sent on one connection: a sequence of well-formed answers,
 * possibly ended by one of uWS's parser refusals; HEAD answers carry no body.
 */
function judge(bytes: Buffer, closed: boolean, timedOut: boolean, method: string, mayCut: boolean, oip: boolean): Outcome {
  if (timedOut && bytes.length === 0) return { first: 'hang', answers: 0, problem: 'no answer and not closed within the timeout' };
  let rest = bytes;
  let first: string | null = null;
  let answers = 0;
  while (rest.length > 0) {
    const text = rest.toString('latin1');
    const refusal = Object.entries(UWS_REFUSALS).find(([, t]) => text.startsWith(t.slice(0, Math.min(t.length, text.length))) && text.length >= 12);
    if (refusal) {
      first ??= `uws-${refusal[0]}`;
      if (!closed) return { first, answers, problem: `uWS ${refusal[0]} without a close` };
      return { first, answers, problem: null };
    }
    const a = parseAnswer(method === 'HEAD' && answers === 0 ? withoutBody(rest) : rest);
    if (a === null) {
      // uWS closes a connection at once when the client half-closes it, or sends bytes that do
      // not parse after its request: an answer still being written is then cut short.
      if (mayCut && closed && /^HTTP\/1\.1 \d{3} /.test(text)) return { first: first ?? `cut-${text.slice(9, 12)}`, answers, problem: null };
      return { first: first ?? 'malformed', answers, problem: `not a well-formed answer: ${JSON.stringify(text.slice(0, 300))}` };
    }
    answers++;
    first ??= String(a.status);
    if (a.status < 100 || a.status > 599) return { first, answers, problem: `status ${a.status}` };
    if (a.status >= 400) {
      if (!(a.headers['content-type'] ?? '').startsWith('application/json')) return { first, answers, problem: `a ${a.status} that is not JSON: ${JSON.stringify(text.slice(0, 300))}` };
      if (!(method === 'HEAD' && answers === 1) && errorOf(a.body.toString('utf8')) === null && !(oip && oipErrorOf(a.body.toString('utf8')))) return { first, answers, problem: `a ${a.status} without {"error":{"code","message"}}: ${JSON.stringify(a.body.toString('utf8').slice(0, 300))}` };
    }
    rest = method === 'HEAD' && answers === 1 ? rest.subarray(rest.indexOf('\r\n\r\n') + 4) : a.rest;
  }
  if (timedOut && !closed && first === null) return { first: 'hang', answers, problem: 'not closed within the timeout' };
  return { first: first ?? 'closed', answers, problem: null };
}

/** The Open Inference Protocol's error shape, {"error": "<message>"}, on its /v2 routes. */
function oipErrorOf(text: string): boolean {
  try {
    return typeof (JSON.parse(text) as { error?: unknown }).error === 'string';
  } catch {
    return false;
  }
}

/** A HEAD answer's head alone (its Content-Length describes a body that is not sent). */
function withoutBody(buf: Buffer): Buffer {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf;
  const head = buf.subarray(0, end).toString('latin1').replace(/\r\ncontent-length:[^\r]*/i, '\r\nContent-Length: 0');
  return Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), buf.subarray(end + 4)]);
}

interface Tally {
  tried: number;
  /** The first case that got each outcome, to reproduce it. */
  example: Record<string, string>;
  byStatus: Record<string, number>;
  byRoute: Record<string, number>;
  problems: string[];
  slowestMs: number;
}

function newTally(): Tally {
  return { tried: 0, example: {}, byStatus: {}, byRoute: {}, problems: [], slowestMs: 0 };
}

/** Sends one request on a fresh connection and judges what comes back. */
async function run(port: number, c: { bytes: Buffer | Buffer[]; fin: boolean; method: string; keepAlive: boolean; mayCut: boolean; oip?: boolean; name: string; route: string }, tally: Tally): Promise<void> {
  const t0 = Date.now();
  const pieces = Array.isArray(c.bytes) ? c.bytes : [c.bytes];
  const r = await rawExchange(
    port,
    async (s) => {
      for (const p of pieces) {
        if (!s.write(p)) await new Promise((resolve) => s.once('drain', resolve));
      }
      if (c.fin) s.end();
    },
    {
      timeoutMs: REQUEST_TIMEOUT_MS,
      // On a kept-alive connection the first whole answer is the end of this case.
      doneWhen: c.keepAlive ? (b) => parseAnswer(c.method === 'HEAD' ? withoutBody(b) : b) !== null : undefined,
    },
  );
  const o = judge(r.bytes, r.closed, r.timedOut, c.method, c.mayCut, c.oip === true);
  tally.tried++;
  tally.byStatus[o.first] = (tally.byStatus[o.first] ?? 0) + 1;
  tally.example[o.first] ??= `${c.name}: ${JSON.stringify(r.bytes.toString('latin1').slice(0, 400))}`;
  tally.byRoute[c.route] = (tally.byRoute[c.route] ?? 0) + 1;
  tally.slowestMs = Math.max(tally.slowestMs, Date.now() - t0);
  if (o.problem) tally.problems.push(`${c.name}: ${o.problem}`);
}

/**
 * Runs `count` cases, `width` at a time. Case `i` is made when its turn comes (so the fuzzed
 * bodies are never all in memory), in order, so the sequence depends on the seed alone.
 */
async function pool<T>(count: number, width: number, make: (i: number) => T, each: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await each(make(next++));
    }),
  );
}

function rawCases(g: Gen): Array<{ name: string; bytes: Buffer | Buffer[] }> {
  const out: Array<{ name: string; bytes: Buffer | Buffer[] }> = [];
  const add = (name: string, text: string | Buffer | Buffer[]): void => {
    out.push({ name, bytes: typeof text === 'string' ? Buffer.from(text, 'latin1') : text });
  };
  const sync = ['/monitoring/health/liveness', '/monitoring/health/readiness', '/models', '/monitoring/health', '/monitoring/drift/status', '/monitoring/cache/stats', '/monitoring/system/info', '/train'];
  // Malformed request lines.
  for (const line of [
    'GET', 'GET /', 'GET / HTTP/1.1', 'GET / HTTP/9.9', 'GET / HTTP/1.0', 'GET / HTTP/2.0', 'GET / HTTX/1.1', 'G@T / HTTP/1.1', 'get /monitoring/health/liveness HTTP/1.1',
    'BREW /predict HTTP/1.1', ' GET / HTTP/1.1', 'GET  /predict  HTTP/1.1', 'GET /predict HTTP/1.1 extra', 'GET http://127.0.0.1/monitoring/health HTTP/1.1', 'GET * HTTP/1.1',
    'OPTIONS * HTTP/1.1', 'CONNECT 127.0.0.1:80 HTTP/1.1', 'GET /%00 HTTP/1.1', 'GET /\u0000 HTTP/1.1', 'GET /predict?' + 'a'.repeat(8000) + ' HTTP/1.1', 'GET /' + 'x'.repeat(100_000) + ' HTTP/1.1',
    'GET /\u00ff\u00fe HTTP/1.1', 'HEAD /monitoring/health/liveness HTTP/1.1', 'HEAD /predict HTTP/1.1', 'GET /monitoring/health/liveness HTTP/1.1\r\nHost x', 'GET /models HTTP/1.1\r\n: novalue',
    'GET /models HTTP/1.1\r\n Host: folded', 'GET /models HTTP/1.1\r\nHo\u0000st: x', 'GET /models HTTP/1.1\r\nHost: \u0001\u0002',
  ]) {
    // uWS closes an HTTP/1.1 request without Host before looking further: most cases carry one.
    add(`request line ${JSON.stringify(line.slice(0, 40))}`, line + '\r\nHost: x\r\n\r\n');
    add(`request line without Host ${JSON.stringify(line.slice(0, 40))}`, line + '\r\n\r\n');
    add(`request line (LF only) ${JSON.stringify(line.slice(0, 40))}`, line + '\nHost: x\n\n');
  }
  add('CRLFs before a request', '\r\n\r\n\r\nGET /monitoring/health/liveness HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 60; i++) add(`random request line ${i}`, Buffer.concat([g.bytes(g.int(1, 200)), Buffer.from('\r\n\r\n')]));
  // Floods of headers and huge headers.
  for (const n of [10, 49, 50, 51, 100, 1000, 10_000]) add(`${n} headers`, `GET ${g.pick(sync)} HTTP/1.1\r\nHost: x\r\n` + Array.from({ length: n }, (_, i) => `X-H${i}: v${i}\r\n`).join('') + '\r\n');
  for (const n of [1000, 4000, 4097, 5000, 16_384, 65_536, 1_048_576]) {
    add(`one header of ${n} bytes`, `GET ${g.pick(sync)} HTTP/1.1\r\nHost: x\r\nX-Big: ${'v'.repeat(n)}\r\n\r\n`);
    // The same head in small pieces: headers that span packets go through uWS's fallback buffer.
    const whole = Buffer.from(`GET ${g.pick(sync)} HTTP/1.1\r\nHost: x\r\nCookie: ${'c'.repeat(n)}\r\n\r\n`, 'latin1');
    const pieces: Buffer[] = [];
    for (let at = 0; at < whole.length; at += 1400) pieces.push(whole.subarray(at, at + 1400));
    add(`one header of ${n} bytes in pieces`, pieces);
  }
  // Bad chunked encoding.
  for (const target of ['/predict', '/learn', '/no/such/path', '/monitoring/drift/reset']) {
    for (const chunks of ['zz\r\nabc\r\n0\r\n\r\n', '5\r\nab\r\n0\r\n\r\n', '-1\r\nx\r\n0\r\n\r\n', 'ffffffffffffffff\r\nx\r\n', '3;ext=1\r\nabc\r\n0\r\n\r\n', '3\r\nabc0\r\n\r\n', '0\r\nTrailer: x\r\n\r\n', '7fffffff\r\nabc', '\r\n\r\n', '3\nabc\n0\n\n', '0000000000000000000003\r\nabc\r\n0\r\n\r\n']) {
      add(`chunked ${target} ${JSON.stringify(chunks.slice(0, 24))}`, `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`);
    }
    add(`chunked and Content-Length ${target}`, `POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`);
    for (const te of ['gzip', 'chunked, gzip', 'xchunked', 'identity', 'CHUNKED']) add(`Transfer-Encoding ${te} ${target}`, `POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
  }
  // Garbage after a valid request.
  for (let i = 0; i < 80; i++) {
    const valid = `GET ${g.pick(sync)} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const garbage = g.pick<() => Buffer>([
      () => g.bytes(g.int(1, 500)),
      () => Buffer.from('GET /monitor'),
      () => Buffer.from(`GET ${g.pick(sync)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      () => Buffer.from('HTTP/1.1 200 OK\r\n\r\n'),
      () => Buffer.from('\r\n'.repeat(g.int(1, 100))),
      () => g.bytes(100_000),
      () => Buffer.from(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{"fe`),
    ])();
    add(`garbage after a valid request ${i}`, Buffer.concat([Buffer.from(valid.repeat(g.int(1, 3))), garbage]));
  }
  return out;
}

describe('chaos: bodies and requests', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-fuzz-'));
  let engine: EngineProc;
  let routes: Route[] = [];

  beforeAll(async () => {
    routes = await routesOfTheRouter();
    engine = await startEngine('http-fuzz', { WORKERS: '1', MAX_BODY_BYTES: '262144', MAX_REQUEST_ROWS: '1024', MODEL_UPLOAD_MAX_BYTES: '1048576' }, dir);
  });
  afterAll(async () => {
    if (engine) await stopEngine(engine);
    rmSync(dir, { recursive: true, force: true });
  });

  it('covers every route of the router', () => {
    expect(routes.length).toBeGreaterThanOrEqual(15);
    expect(routes).toContainEqual({ method: 'POST', template: '/predict' });
    expect(routes).toContainEqual({ method: 'POST', template: '/learn' });
  });

  it(`answers ${BODIES} fuzzed bodies on every route well-formed, or closes; nothing hangs`, async () => {
    const g = new Gen(SEED);
    const tally = newTally();
    const kinds: Record<string, number> = {};
    await pool(BODIES, IN_FLIGHT, (i) => bodyCase(g, i, routes), (c) => {
      kinds[c.kind] = (kinds[c.kind] ?? 0) + 1;
      const route = routes[c.id % routes.length]!;
      return run(engine.port, { bytes: c.bytes, fin: c.fin, method: c.method, keepAlive: c.framing === 'keep-alive' || c.framing === 'chunked', mayCut: c.fin || c.framing === 'short-length', oip: c.path.startsWith('/v2'), name: `case ${c.id} (${c.kind}, ${c.framing}, ${c.method} ${c.path.slice(0, 60)})`, route: `${route.method} ${route.template}` }, tally);
    });
    console.log(`http fuzz: ${tally.tried} bodies (seed ${SEED}); first answers by status ${JSON.stringify(tally.byStatus)}; slowest ${tally.slowestMs} ms`);
    console.log(`http fuzz: by kind ${JSON.stringify(kinds)}`);
    console.log(`http fuzz: by route ${JSON.stringify(tally.byRoute)}`);
    for (const [k, v] of Object.entries(tally.example)) if (/^(5|cut)/.test(k)) console.log(`http fuzz: first ${k}: ${v}`);
    expect(tally.problems.slice(0, 20)).toEqual([]);
    expect(tally.tried).toBe(BODIES);
    expect(tally.byStatus['hang'] ?? 0).toBe(0);
    for (const r of routes) expect(tally.byRoute[`${r.method} ${r.template}`] ?? 0, `${r.method} ${r.template}`).toBeGreaterThanOrEqual(Math.floor(BODIES / routes.length));
    // Not a pass by closing everything: most cases get an answer from the routes.
    const answered = Object.entries(tally.byStatus).filter(([k]) => /^\d{3}$/.test(k)).reduce((n, [, v]) => n + v, 0);
    expect(answered).toBeGreaterThan(BODIES / 2);
    expect(tally.byStatus['200'] ?? 0).toBeGreaterThan(0);
  });

  it('answers malformed request lines, header floods, huge headers, bad chunked encoding and pipelined garbage well-formed, or closes', async () => {
    const g = new Gen(SEED + 1);
    const cases = rawCases(g);
    const tally = newTally();
    const category = (name: string): string => /^(request line without Host|request line \(LF only\)|request line|random request line|CRLFs|\d+ headers|one header of \d+ bytes in pieces|one header|chunked and Content-Length|chunked|Transfer-Encoding|garbage after a valid request)/.exec(name)?.[1]?.replace(/\d+ headers/, 'header flood').replace(/^one header.*$/, (h) => (h.endsWith('pieces') ? 'huge header in pieces' : 'huge header')) ?? name;
    await pool(cases.length, IN_FLIGHT, (i) => cases[i]!, (c) => run(engine.port, { bytes: c.bytes, fin: true, method: /^HEAD /.test(Buffer.isBuffer(c.bytes) ? c.bytes.toString('latin1', 0, 5) : '') ? 'HEAD' : 'GET', keepAlive: false, mayCut: true, name: c.name, route: category(c.name) }, tally));
    console.log(`http fuzz: ${tally.tried} raw requests; first answers by status ${JSON.stringify(tally.byStatus)}; slowest ${tally.slowestMs} ms`);
    console.log(`http fuzz: raw requests by kind ${JSON.stringify(tally.byRoute)}`);
    expect(tally.problems.slice(0, 20)).toEqual([]);
    expect(tally.byStatus['hang'] ?? 0).toBe(0);
  });

  it('is alive and serving afterwards, with no fatal line in its log', async () => {
    expect(engine.child.exited).toBe(false);
    expect((await request(engine.port, 'GET', '/monitoring/health/liveness')).status).toBe(200);
    expect((await postJson(engine.port, { features: Array.from({ length: F }, (_, i) => i / 10) })).status).toBe(200);
    expect(logProblems(engine, 60)).toEqual([]);
  });
});
