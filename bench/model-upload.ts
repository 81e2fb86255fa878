/**
 * /predict while a large model is uploaded (issue 12, defect 7: "model validation stalls
 * serving"). One engine (defaults, CACHE_CAPACITY=0), a steady open-loop load of single-row JSON
 * predictions, and rounds of
 *
 *   idle    a window of --idle-ms with nothing else going on;
 *   upload  POST /models/ensemble/load of a ~50 MB MLP (src/training/onnx-writer.ts, F=16, one
 *           hidden layer of --hidden units; a distinct file per round), sent by curl; the window
 *           runs from curl's start to its exit, i.e. receiving the body, validating the
 *           candidate, storing it and the flip;
 *   then, outside any window, a rollback to the small bundled model and a pause, so every idle
 *   window is served by the same small model as the start of every upload window.
 *
 * The load is open-loop: requests leave at a fixed rate whatever the answers do (so a stall is
 * paid by every request that arrives during it, not hidden by clients waiting for their previous
 * answer, as with closed-loop generators such as wrk), over up to 64 keep-alive connections;
 * latency runs from the moment a request is sent to its last byte. The generator is a process of
 * its own, so that nothing the harness does (starting curl, holding the model files) delays a
 * request or the reading of an answer. A request counts in the window it was sent in.
 *
 * An upload window is measured up to the flip: the sending of the first request the uploaded
 * version answered. What is sent between the flip and the upload's answer (a few milliseconds of
 * recording the new serving version) runs on the 50 MB model itself, a few milliseconds a batch,
 * or queued behind it until the rollback: it measures that model, not the upload, and is counted
 * and shown apart.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/model-upload.js [--rounds 8] [--rate 1000] [--hidden 700000]
 *     [--idle-ms 2000] [--engine path/to/dist/src/cli/main.js] [--label text] [--out file.md] [--list-slow ms]
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { numberFlag, type FlagSpec } from './lib/args';
import { makeBodies } from './lib/bodies';
import { cpuSeconds, machineBusySeconds } from './lib/cpu';
import { CLI, fmtRatio, loadLine, machineLine, median, postJson, runScript, sleep, sourceLine, startEngine, stopEngine, type EngineProc } from './lib/engine-proc';
import { startChild } from './lib/procs';
import { FEATURE_NAMES } from '../src/training/features';
import { writeEnsembleOnnx } from '../src/training/onnx-writer';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds, one idle and one upload window each (default 8)' },
  { name: 'rate', help: 'predictions per second, sent whatever the answers do (default 1000)' },
  { name: 'hidden', help: 'hidden units of the uploaded MLP: 72 bytes each, 700000 is about 50 MB (default 700000)' },
  { name: 'idle-ms', help: 'length of an idle window (default 2000)' },
  { name: 'engine', help: 'the CLI to serve with (default dist/src/cli/main.js; another build, e.g. the commit before a change, to compare)' },
  { name: 'label', help: 'what the report calls the engine (default: the source line)' },
  { name: 'out', help: 'also write the markdown section to this file' },
  { name: 'list-slow', help: 'also print, per window, every request slower than this many ms: when it was sent (ms into the window) + its latency, N when the uploaded model computed it' },
];

const F = 16;
const MAX_SOCKETS = 64;
const SETTLE_MS = 1500;

/** Milliseconds on a clock both processes share (the harness and its load generator). */
const clock = (): number => performance.timeOrigin + performance.now();

interface Sample {
  /** clock() when the request was sent. */
  sent: number;
  ms: number;
  status: number;
  version: string | null;
}

/** Sends POST /predict at a fixed rate until stopped, whatever the answers do. */
class OpenLoop {
  readonly samples: Sample[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  private sent = 0;
  private outstanding = 0;
  private stopped = false;
  private drained: (() => void) | null = null;
  private start = 0;
  /** How far behind its schedule the generator fell at worst (its own event loop's lag). */
  maxLateMs = 0;

  constructor(
    private readonly port: number,
    private readonly rate: number,
    private readonly bodies: Buffer[],
  ) {}

  run(): void {
    this.start = clock();
    const tick = (): void => {
      if (this.stopped) return;
      const now = clock();
      const due = Math.floor(((now - this.start) * this.rate) / 1000);
      if (due > this.sent) this.maxLateMs = Math.max(this.maxLateMs, now - (this.start + ((this.sent + 1) * 1000) / this.rate));
      while (this.sent < due) this.fire(this.bodies[this.sent++ % this.bodies.length]!);
      setTimeout(tick, 1);
    };
    tick();
  }

  private fire(body: Buffer): void {
    const sent = clock();
    this.outstanding++;
    const done = (status: number, text: string): void => {
      let version: string | null = null;
      if (status === 200) version = (JSON.parse(text) as { version?: string }).version ?? null;
      this.samples.push({ sent, ms: clock() - sent, status, version });
      if (--this.outstanding === 0 && this.drained) this.drained();
    };
    const req = http.request(
      { host: '127.0.0.1', port: this.port, method: 'POST', path: '/predict', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => done(res.statusCode ?? 0, text));
      },
    );
    req.on('error', () => done(-1, ''));
    req.end(body);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.outstanding > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.agent.destroy();
  }
}

/**
 * The load generator runs in a process of its own (this file, started with LOADGEN_ENV set), so
 * that nothing the harness does (starting curl, holding model files) delays a request or the
 * reading of an answer. It starts on {port, rate}, and answers 'stop' with its samples.
 */
const LOADGEN_ENV = 'TRADEFLOW_BENCH_MODEL_UPLOAD_LOADGEN';

interface LoadGenResult {
  samples: Sample[];
  maxLateMs: number;
}

function loadGeneratorMain(): void {
  let load: OpenLoop | null = null;
  process.on('message', (msg: { cmd: 'start'; port: number; rate: number } | { cmd: 'stop' } | { cmd: 'reset' }) => {
    if (msg.cmd === 'start') {
      load = new OpenLoop(msg.port, msg.rate, makeBodies('features', 1, F, 4096, 7).bodies);
      load.run();
      process.send!({ cmd: 'started' });
    } else if (msg.cmd === 'reset') {
      load!.samples.length = 0;
      process.send!({ cmd: 'reset' });
    } else {
      void load!.stop().then(() => process.send!({ cmd: 'result', result: { samples: load!.samples, maxLateMs: load!.maxLateMs } satisfies LoadGenResult }, () => process.exit(0)));
    }
  });
}

class LoadGenerator {
  private constructor(private readonly proc: ChildProcess) {}

  get pid(): number | undefined {
    return this.proc.pid;
  }

  static async start(port: number, rate: number): Promise<LoadGenerator> {
    const proc = fork(__filename, [], { env: { ...process.env, [LOADGEN_ENV]: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    process.on('exit', () => proc.kill('SIGKILL'));
    const g = new LoadGenerator(proc);
    await g.ask({ cmd: 'start', port, rate }, 'started');
    return g;
  }

  private ask<T>(msg: object, answer: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: { cmd: string; result?: T }): void => {
        if (m.cmd !== answer) return;
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
        resolve(m.result as T);
      };
      const onExit = (code: number | null): void => reject(new Error(`the load generator exited (code ${code})`));
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
      this.proc.send(msg);
    });
  }

  /** Forgets the samples so far (the warm-up's). */
  reset(): Promise<void> {
    return this.ask({ cmd: 'reset' }, 'reset');
  }

  stop(): Promise<LoadGenResult> {
    return this.ask({ cmd: 'stop' }, 'result');
  }
}

/** A ~50 MB valid ensemble: an MLP with `hidden` units; `seed` changes the bytes (and the version). */
function bigModel(hidden: number, seed: number): Uint8Array {
  let s = seed >>> 0 || 1;
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const w1 = new Float64Array(F * hidden);
  for (let i = 0; i < w1.length; i++) w1[i] = rnd() * 0.1;
  const w2 = new Float64Array(hidden);
  for (let i = 0; i < hidden; i++) w2[i] = rnd() * 0.01;
  return writeEnsembleOnnx({
    featureNames: FEATURE_NAMES,
    standardizer: { mean: new Float64Array(F), std: new Float64Array(F).fill(1) },
    mlp: { features: F, hidden, w1, b1: new Float64Array(hidden), w2, b2: rnd() },
  });
}

interface Upload {
  from: number;
  to: number;
  status: number;
  version: string | null;
}

/** curl sends the file (so the harness never holds 50 MB in its own event loop); resolves when it exits. */
async function upload(port: number, file: string): Promise<Upload> {
  const from = clock();
  const c = startChild('curl', 'curl', ['-s', '-H', 'Expect:', '-H', 'content-type: application/octet-stream', '--data-binary', `@${file}`, '-w', '\n%{http_code}', `http://127.0.0.1:${port}/models/ensemble/load`], { capture: true });
  await c.exitPromise;
  const to = clock();
  const lines = c.output().trimEnd().split('\n');
  const status = Number(lines.pop());
  let version: string | null = null;
  try {
    version = (JSON.parse(lines.join('\n')) as { version?: string }).version ?? null;
  } catch {
    /* the report shows the status */
  }
  return { from, to, status, version };
}

interface Window {
  kind: 'idle' | 'upload';
  from: number;
  to: number;
  /** Upload windows: the uploaded version. */
  uploaded: string | null;
  /** Where the measured part ends: `to`, or for an upload the flip (see the file's comment). */
  measuredTo: number;
  status: number;
  engineCpuS: number;
  /** % of one core that everything but the engine and the load generator used (other jobs, VM steal; curl in upload windows). */
  otherCpuPct: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

interface WindowStats {
  n: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  /** Requests sent after the flip (kept out of the percentiles). */
  afterFlip: number;
  afterFlipP50: number;
}

function windowStats(samples: readonly Sample[], ws: readonly Window[]): WindowStats {
  const ms: number[] = [];
  const late: number[] = [];
  let errors = 0;
  for (const w of ws) {
    for (const s of samples) {
      if (s.sent < w.from || s.sent >= w.to) continue;
      if (s.status !== 200) errors++;
      else if (s.sent >= w.measuredTo) late.push(s.ms);
      else ms.push(s.ms);
    }
  }
  ms.sort((a, b) => a - b);
  late.sort((a, b) => a - b);
  return { n: ms.length, p50: pct(ms, 50), p99: pct(ms, 99), max: ms[ms.length - 1] ?? NaN, errors, afterFlip: late.length, afterFlipP50: pct(late, 50) };
}

/** CPU seconds so far: the engine's, the load generator's, the whole machine's. */
function cpuNow(e: EngineProc, gen: LoadGenerator): { engine: number; gen: number; machine: number } {
  return { engine: cpuSeconds(e.child.proc.pid), gen: cpuSeconds(gen.pid), machine: machineBusySeconds() };
}

function cpuSince(c0: ReturnType<typeof cpuNow>, c1: ReturnType<typeof cpuNow>, wallMs: number): { engineCpuS: number; otherCpuPct: number } {
  const engineCpuS = c1.engine - c0.engine;
  return { engineCpuS, otherCpuPct: Math.max(0, ((c1.machine - c0.machine - engineCpuS - (c1.gen - c0.gen)) / (wallMs / 1000)) * 100) };
}

async function measure(e: EngineProc, gen: LoadGenerator, files: string[], idleMs: number): Promise<Window[]> {
  const windows: Window[] = [];
  for (const file of files) {
    let c0 = cpuNow(e, gen);
    const idleFrom = clock();
    await sleep(idleMs);
    const idleTo = clock();
    windows.push({ kind: 'idle', from: idleFrom, to: idleTo, uploaded: null, measuredTo: idleTo, status: 0, ...cpuSince(c0, cpuNow(e, gen), idleTo - idleFrom) });
    c0 = cpuNow(e, gen);
    const u = await upload(e.port, file);
    windows.push({ kind: 'upload', from: u.from, to: u.to, uploaded: u.version, measuredTo: u.to, status: u.status, ...cpuSince(c0, cpuNow(e, gen), u.to - u.from) });
    if (u.status !== 200) throw new Error(`upload of ${file} answered ${u.status}`);
    const back = await postJson(e.port, '/models/ensemble/rollback', '');
    if (back.status !== 200) throw new Error(`rollback answered ${back.status}: ${JSON.stringify(back.json)}`);
    // The workers that served the big model stop once their batches are done; let the machine settle.
    await sleep(SETTLE_MS);
  }
  return windows;
}

/** Ends each upload window's measured part at the flip: the first request its version answered. */
function cutAtFlips(windows: Window[], samples: readonly Sample[]): void {
  for (const w of windows) {
    if (w.uploaded === null) continue;
    for (const s of samples) if (s.version === w.uploaded && s.sent >= w.from && s.sent < w.measuredTo) w.measuredTo = s.sent;
  }
}

/** Where in each window the slow requests were: for telling a stall from scattered contention. */
function listSlow(windows: readonly Window[], samples: readonly Sample[], ms: number): string {
  return windows
    .map((w) => {
      const slow = samples.filter((x) => x.sent >= w.from && x.sent < w.to && x.ms > ms);
      const flip = w.measuredTo < w.to ? `, flip at ${(w.measuredTo - w.from).toFixed(0)}` : '';
      return `${w.kind} (${(w.to - w.from).toFixed(0)} ms${flip}): ${slow.map((x) => `${(x.sent - w.from).toFixed(0)}+${x.ms.toFixed(1)}${x.version !== null && x.version === w.uploaded ? 'N' : ''}`).join(' ')}\n`;
    })
    .join('');
}

const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** What other processes take is noise on 2 cores: curl's own share of an upload is about 10% of a core. */
const QUIET_OTHER_PCT = 35;

function quietLine(perRound: Array<{ idle: WindowStats; up: WindowStats; otherIdle: number; otherUp: number }>): string {
  const quiet = perRound.filter((r) => r.otherIdle < QUIET_OTHER_PCT && r.otherUp < QUIET_OTHER_PCT);
  if (quiet.length === 0) return `No round had other processes under ${QUIET_OTHER_PCT}% of a core in both windows.`;
  const ratios = quiet.map((r) => r.up.p99 / r.idle.p99);
  return `Rounds where other processes used under ${QUIET_OTHER_PCT}% of a core in both windows: ${quiet.length}; p99 upload ÷ idle there ${ratios.map((x) => x.toFixed(2)).join(' / ')}, median ${fmtRatio(median(ratios))}.`;
}

/** The command line as run, arguments quoted where the shell needs it. */
function commandOf(script: string): string {
  const quote = (a: string): string => (/^[\w./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return `npx tsc -p tsconfig.json && node dist/bench/${script}${process.argv.slice(2).map((a) => ' ' + quote(a)).join('')}`;
}

function report(cmd: string, label: string, entry: string, modelBytes: number, rate: number, windows: Window[], samples: Sample[], maxLateMs: number, loadStart: string): string {
  const idle = windows.filter((w) => w.kind === 'idle');
  const up = windows.filter((w) => w.kind === 'upload');
  const si = windowStats(samples, idle);
  const su = windowStats(samples, up);
  const perRound = up.map((w, i) => ({ idle: windowStats(samples, [idle[i]!]), up: windowStats(samples, [w]), ms: w.to - w.from, flipMs: w.to - w.measuredTo, otherIdle: idle[i]!.otherCpuPct, otherUp: w.otherCpuPct }));
  const cpu = (ws: Window[]): string => `${((ws.reduce((a, w) => a + w.engineCpuS, 0) / (ws.reduce((a, w) => a + w.to - w.from, 0) / 1000)) * 100).toFixed(0)}%`;
  const row = (name: string, s: WindowStats, ws: Window[]): string => `| ${name} | ${s.n} | ${f2(s.p50)} | ${f2(s.p99)} | ${f2(s.max)} | ${s.errors} | ${cpu(ws)} |`;
  const lines = [
    `### ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${label}`,
    '',
    `- Command: \`${cmd}\``,
    `- Source: ${entry === CLI ? sourceLine() : `the engine is ${entry} (${label}); the harness is ${sourceLine()}`}`,
    `- Machine: ${machineLine()}; load average (1 / 5 / 15 min) ${loadStart} at the start, ${loadLine()} at the end`,
    `- Engine: defaults (WORKERS=${Math.max(1, os.cpus().length - 1)}), \`CACHE_CAPACITY=0\`; serving models/ensemble.onnx between uploads`,
    `- Load: ${rate} POST /predict per second (JSON, 1 row, rotating seeded bodies), open loop over up to ${MAX_SOCKETS} keep-alive connections, from a process of its own; its timer fell at most ${f2(maxLateMs)} ms behind schedule`,
    `- Uploads: ${up.length} distinct ${(modelBytes / 1e6).toFixed(1)} MB MLPs by curl, each followed (outside the windows) by a rollback and ${SETTLE_MS} ms of pause; upload windows ${perRound.map((r) => r.ms.toFixed(0)).join(' / ')} ms`,
    '',
    '| window | requests | p50 ms | p99 ms | max ms | errors | engine CPU |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('idle', si, idle),
    row('during an upload, up to the flip', su, up),
    '',
    `**p99 during an upload ÷ idle: ${fmtRatio(su.p99 / si.p99)}** (pooled over the rounds); per round ${perRound.map((r) => (r.up.p99 / r.idle.p99).toFixed(2)).join(' / ')}, median ${fmtRatio(median(perRound.map((r) => r.up.p99 / r.idle.p99)))}.`,
    `p99 per round, idle: ${perRound.map((r) => f2(r.idle.p99)).join(' / ')} ms; upload: ${perRound.map((r) => f2(r.up.p99)).join(' / ')} ms.`,
    `Other processes (other jobs, VM steal; curl during uploads) per round, idle / upload: ${perRound.map((r) => `${r.otherIdle.toFixed(0)}/${r.otherUp.toFixed(0)}%`).join(' ')} of a core.`,
    quietLine(perRound),
    `Upload windows measured up to the flip, ${perRound.map((r) => r.flipMs.toFixed(0)).join(' / ')} ms before the upload's answer; the ${su.afterFlip} requests sent after it ran on the 50 MB model itself (or queued behind it): kept out of the figures above, p50 ${f2(su.afterFlipP50)} ms.`,
    '',
  ];
  return lines.join('\n');
}

if (process.env[LOADGEN_ENV] === '1') loadGeneratorMain();
else runScript(FLAGS, async (flags, setBudget) => {
  const rounds = numberFlag(flags, 'rounds', 8, 1, 100);
  const rate = numberFlag(flags, 'rate', 1000, 10, 20_000);
  const hidden = numberFlag(flags, 'hidden', 700_000, 1, 5_000_000);
  const idleMs = numberFlag(flags, 'idle-ms', 2000, 100, 60_000);
  const entry = path.resolve(flags.get('engine') ?? CLI);
  setBudget(120 + rounds * (idleMs / 1000 + 30));
  const loadStart = loadLine();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-model-upload-'));
  process.on('exit', () => fs.rmSync(workDir, { recursive: true, force: true }));
  // One more than the rounds: the warm-up's model is never uploaded again (a second upload of the
  // same bytes finds them stored already and writes less).
  const files: string[] = [];
  let modelBytes = 0;
  for (let r = 0; r <= rounds; r++) {
    const bytes = bigModel(hidden, 1000 + r);
    modelBytes = bytes.length;
    files.push(path.join(workDir, `big-${r}.onnx`));
    fs.writeFileSync(files[r]!, bytes);
  }
  process.stdout.write(`${files.length} models of ${(modelBytes / 1e6).toFixed(1)} MB written to ${workDir}\n`);
  const e = await startEngine('model-upload', { CACHE_CAPACITY: '0', MODEL_UPLOAD_MAX_BYTES: String(Math.max(64 << 20, modelBytes + 1024)) }, workDir, entry);
  const gen = await LoadGenerator.start(e.port, rate);
  // Warm-up: connections opened, the JIT warm, the first upload's costs that a second one does not repeat.
  await measure(e, gen, files.slice(0, 1), idleMs);
  await gen.reset();
  const windows = await measure(e, gen, files.slice(1), idleMs);
  const load = await gen.stop();
  await stopEngine(e);
  cutAtFlips(windows, load.samples);
  const slowMs = flags.has('list-slow') ? numberFlag(flags, 'list-slow', 5, 0, 60_000) : null;
  if (slowMs !== null) process.stdout.write(listSlow(windows, load.samples, slowMs));
  const text = report(commandOf('model-upload.js'), flags.get('label') ?? (entry === CLI ? 'this build' : entry), entry, modelBytes, rate, windows, load.samples, load.maxLateMs, loadStart);
  process.stdout.write('\n' + text);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, text);
  return 0;
});
