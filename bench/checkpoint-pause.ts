/**
 * /learn latency around checkpoints against between them (issue 12, defect 8: "/learn p99 jumped
 * to 48-68 ms at the first checkpoint"). One engine, CHECKPOINT_INTERVAL_S=1 (a checkpoint every
 * second instead of every minute, same work each), REPLAY_BUFFER_ROWS at its default of 50,000,
 * filled before measuring, so that every checkpoint carries the full buffer. Then D seconds of
 * /learn (64 labelled rows per request) from C keep-alive connections of this process, each
 * request timed on its own.
 *
 * When a checkpoint runs is seen from outside the engine, so that any build can be measured
 * (`--cli` another build's dist/src/cli/main.js): inotify (fs.watch) on the state directory sees
 * the checkpoint's temp file appear and `learning.checkpoint` replaced. A request is "around a
 * checkpoint" when its [sent, answered] interval overlaps [temp file created - margin, rename +
 * margin]: the margin (default 50 ms) covers what a checkpoint does before its temp file exists
 * (the snapshot, the log's rotation, and in older builds the whole encoding), and requests a
 * stall delayed. Every other request is "between". The report gives p50 / p99 / max of both and
 * the ratio of the p99s.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/checkpoint-pause.js [--duration 20] [--connections 8] [--margin-ms 50] [--cli path --label text] [--out file.md]
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { UsageError, numberFlag, type FlagSpec } from './lib/args';
import { CLI, commandLine, getJson, loadLine, machineLine, makeLearnBodies, runScript, sourceLine, startEngine, stopEngine, type EngineProc } from './lib/engine-proc';

const FLAGS: FlagSpec[] = [
  { name: 'duration', help: 'seconds of measured /learn load (default 20)' },
  { name: 'connections', help: 'concurrent keep-alive connections (default 8)' },
  { name: 'margin-ms', help: 'widening of each checkpoint window on both sides, ms (default 50)' },
  { name: 'cli', help: "the engine's CLI to run (default: this build's dist/src/cli/main.js)" },
  { name: 'label', help: 'what the report calls that build (e.g. "before, commit e0d1ed0")' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

const ROWS = 64;
const F = 16;
const BODIES = 512;
const REPLAY_ROWS = 50_000;

interface Timed {
  start: number;
  end: number;
  status: number;
}

interface Learning {
  replay_buffer_rows: number;
  examples_learned: number;
  checkpoints?: { written: number; failed: number; last_snapshot_ms: number | null; last_duration_ms: number | null };
}

async function learning(e: EngineProc): Promise<Learning> {
  return (await getJson<{ learning: Learning }>(e.port, '/monitoring/system/info')).learning;
}

function post(agent: http.Agent, port: number, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/learn', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `connections` loops of back-to-back requests until `until` (performance.now() ms); each one timed. */
async function load(port: number, bodies: Buffer[], connections: number, until: number, out: Timed[] | null): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let next = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < until) {
      const body = bodies[next++ % bodies.length]!;
      const start = performance.now();
      const status = await post(agent, port, body);
      out?.push({ start, end: performance.now(), status });
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  return next;
}

/** Checkpoint windows from the state directory's inotify events: [temp file created, checkpoint renamed]. */
function watchCheckpoints(stateDir: string): { stop(): Array<[number, number]> } {
  const open = new Map<string, number>();
  const windows: Array<[number, number]> = [];
  const watcher = fs.watch(stateDir, (_event, name) => {
    const t = performance.now();
    if (name === null) return;
    if (name.startsWith('learning.checkpoint.tmp-')) {
      if (!open.has(name)) open.set(name, t);
    } else if (name === 'learning.checkpoint') {
      // The rename: it closes the earliest open window.
      const first = [...open.entries()].sort((a, b) => a[1] - b[1])[0];
      if (first) {
        windows.push([first[1], t]);
        open.delete(first[0]);
      }
    }
  });
  return {
    stop: () => {
      watcher.close();
      return windows;
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function describe(latencies: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...latencies].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

async function fill(e: EngineProc, bodies: Buffer[], connections: number): Promise<void> {
  for (let round = 0; (await learning(e)).replay_buffer_rows < REPLAY_ROWS; round++) {
    if (round > 200) throw new Error('the replay buffer did not fill');
    await load(e.port, bodies, connections, performance.now() + 500, null);
  }
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const durationS = numberFlag(flags, 'duration', 20, 2, 120);
  const connections = numberFlag(flags, 'connections', 8, 1, 64);
  const marginMs = numberFlag(flags, 'margin-ms', 50, 0, 500);
  const cli = path.resolve(flags.get('cli') ?? CLI);
  if (!fs.existsSync(cli)) throw new UsageError(`--cli ${cli} does not exist`);
  setBudget(durationS + 180);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-checkpoint-pause-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const bodies = makeLearnBodies(ROWS, F, BODIES, 907);
  const e = await startEngine('checkpoint-pause', { CHECKPOINT_INTERVAL_S: '1', REPLAY_BUFFER_ROWS: String(REPLAY_ROWS) }, workDir, cli);
  await fill(e, bodies, connections);
  const before = await learning(e);

  const watch = watchCheckpoints(e.stateDir);
  const timed: Timed[] = [];
  const t0 = performance.now();
  await load(e.port, bodies, connections, t0 + durationS * 1000, timed);
  const windows = watch.stop();
  const after = await learning(e);
  await stopEngine(e);

  const widened = windows.map(([a, b]) => [a - marginMs, b + marginMs] as const);
  const around: number[] = [];
  const between: number[] = [];
  let bad = 0;
  for (const r of timed) {
    if (r.status !== 202) bad++;
    const overlaps = widened.some(([a, b]) => r.start < b && r.end > a);
    (overlaps ? around : between).push(r.end - r.start);
  }
  const A = describe(around);
  const B = describe(between);
  const ms = (v: number): string => v.toFixed(2);
  const cpWall = windows.map(([a, b]) => b - a).sort((x, y) => x - y);
  const written = after.checkpoints && before.checkpoints ? after.checkpoints.written - before.checkpoints.written : null;

  const L: string[] = [];
  const label = flags.get('label');
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${label ? ` — ${label}` : ''}`, '');
  L.push(`- Command: \`${commandLine('checkpoint-pause.js')}\``);
  L.push(`- Source: ${cli === CLI ? sourceLine() : `the build at ${cli}${label ? ` (${label})` : ''}`}`);
  L.push(`- Machine: ${machineLine()}; load average ${loadAtStart} at the start, ${loadLine()} at the end`);
  L.push(`- Engine: defaults but CHECKPOINT_INTERVAL_S=1, REPLAY_BUFFER_ROWS=${REPLAY_ROWS} (full before measuring); ${durationS} s of /learn, ${ROWS} rows per request, ${connections} keep-alive connections from the bench process; window margin ${marginMs} ms`);
  L.push('');
  L.push('| requests | count | p50 ms | p99 ms | max ms |');
  L.push('| --- | ---: | ---: | ---: | ---: |');
  L.push(`| around a checkpoint | ${A.n} | ${ms(A.p50)} | ${ms(A.p99)} | ${ms(A.max)} |`);
  L.push(`| between checkpoints | ${B.n} | ${ms(B.p50)} | ${ms(B.p99)} | ${ms(B.max)} |`);
  L.push('');
  L.push(
    `p99 around ÷ between: **${(A.p99 / B.p99).toFixed(2)}×**. Checkpoints seen: ${windows.length} (temp file to rename: median ${ms(percentile(cpWall, 50))} ms, max ${ms(cpWall[cpWall.length - 1] ?? NaN)} ms)` +
      (written !== null ? `; the engine counted ${written} written, last one's main-thread snapshot ${ms(after.checkpoints!.last_snapshot_ms ?? NaN)} ms of ${ms(after.checkpoints!.last_duration_ms ?? NaN)} ms` : '') +
      `; answers other than 202: ${bad}; replay buffer ${after.replay_buffer_rows} rows.`,
  );
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
