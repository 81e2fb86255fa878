/**
 * The hand-off between a front-end thread and the main thread (issue 11, part 5), measured alone:
 * a real worker thread echoing what it gets, as the main thread answers a front-end thread.
 *
 *   (a) one message per request: a 7-number descriptor array out, a [id, version] pair back
 *   (b) one message per event-loop pass: 64 descriptors in one flat array out, 64 pairs back (what
 *       src/http/threads/ does), per request
 *   (c) no message at all: a descriptor written into shared memory and Atomics.notify, the other
 *       side woken by Atomics.waitAsync, per request (the alternative the issue names)
 *
 * Each figure is the round trip, both directions, divided by the requests it carried.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/handoff.bench.js
 */
import { MessageChannel, Worker } from 'node:worker_threads';

const ECHO = `
const { workerData } = require('node:worker_threads');
const { port, sab } = workerData;
port.on('message', (m) => {
  if (m.t === 'one') port.postMessage({ t: 'done', ok: [m.d[0], 0], v: ['u1'] });
  else if (m.t === 'many') { const ok = new Array(m.d.length / 7 * 2); for (let i = 0, j = 0; i < m.d.length; i += 7, j += 2) { ok[j] = m.d[i]; ok[j + 1] = 0; } port.postMessage({ t: 'done', ok, v: ['u1'] }); }
});
const flag = new Int32Array(sab);
(function loop() {
  const r = Atomics.waitAsync(flag, 0, 0);
  const go = () => { Atomics.store(flag, 0, 0); Atomics.store(flag, 1, Atomics.load(flag, 1) + 1); Atomics.notify(flag, 1); loop(); };
  if (r.async) r.value.then(go); else go();
})();
`;

/** Atomics.waitAsync (Node 16+), which the ES2022 library typings do not declare. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync;

export interface HandoffRow {
  mode: string;
  usPerRequest: number;
  requests: number;
}

async function timeIt(n: number, one: () => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.min(200, n); i++) await one();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one();
  return ((performance.now() - t0) * 1000) / n;
}

export async function run(): Promise<string> {
  const { port1, port2 } = new MessageChannel();
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const w = new Worker(ECHO, { eval: true, workerData: { port: port2, sab }, transferList: [port2] });
  let waiting: (() => void) | null = null;
  port1.on('message', () => waiting?.());
  const roundTrip = (m: unknown): Promise<void> =>
    new Promise((resolve) => {
      waiting = resolve;
      port1.postMessage(m);
    });
  const desc = [1, 0, 3, 1, 0, 1e12, 1e12];
  const many: number[] = [];
  for (let i = 0; i < 64; i++) many.push(i, 0, i, 1, 0, 1e12, 1e12);
  const rows: HandoffRow[] = [];
  const n = 5000;
  rows.push({ mode: '(a) one message per request', usPerRequest: await timeIt(n, () => roundTrip({ t: 'one', d: desc, own: [], ids: [null] })), requests: n });
  const perBatch = await timeIt(n / 10, () => roundTrip({ t: 'many', d: many, own: [], ids: new Array(64).fill(null) }));
  rows.push({ mode: '(b) 64 requests per message', usPerRequest: perBatch / 64, requests: (n / 10) * 64 });
  const atomics = async (): Promise<void> => {
    const seen = Atomics.load(flag, 1);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    const r = waitAsync(flag, 1, seen);
    if (r.async) await r.value;
  };
  rows.push({ mode: '(c) Atomics.notify / waitAsync per request', usPerRequest: await timeIt(n, atomics), requests: n });
  await w.terminate();
  port1.close();
  const lines = ['| hand-off (round trip, both directions) | µs per request | requests timed |', '| --- | ---: | ---: |'];
  for (const r of rows) lines.push(`| ${r.mode} | ${r.usPerRequest.toFixed(2)} | ${r.requests} |`);
  return lines.join('\n');
}

if (require.main === module) {
  run().then((s) => process.stdout.write(s + '\n'), (err: unknown) => {
    process.stderr.write(String(err) + '\n');
    process.exit(1);
  });
}
