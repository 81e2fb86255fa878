/**
 * What keeping predictions for feedback by id in Redis costs /predict (issue 13, part 2). With
 * REDIS_URL set, an answer to a request with an `"id"` waits for Redis to hold the prediction (one
 * EVALSHA round trip), so that feedback sent right after the answer, to any replica, finds it;
 * without an id nothing touches Redis. Three engines, identical but for REDIS_URL: none, a
 * redis-server this script starts with appendfsync always, and one with everysec (what of the cost
 * is Redis's fsync rather than the round trip); 1-row JSON at 64 connections:
 *   (a) every request with a distinct id (the store's work on every request: a write and an eviction),
 *   (b) no id (Redis not on the path at all).
 * wrk drives one engine at a time, the order rotated each round; medians over rounds and the
 * ratios to the local engine, of the medians and per round.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/predict-id.js [--rounds 6] [--duration 4] [--warmup 2]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { numberFlag, type FlagSpec } from './lib/args';
import { makeBodies } from './lib/bodies';
import {
  commandLine,
  fmtCount,
  fmtMs,
  fmtRatio,
  loadLine,
  machineLine,
  measured,
  median,
  pairedRatios,
  ratioList,
  runLine,
  runScript,
  sleep,
  sourceLine,
  startEngine,
  stopEngine,
  summarize,
  type EngineProc,
  type Measured,
} from './lib/engine-proc';
import { freePort, startChild, stopChild, waitFor } from './lib/procs';
import { request } from './lib/request';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds per engine and scenario (default 6)' },
  { name: 'duration', help: 'seconds per measured run (default 4)' },
  { name: 'warmup', help: 'seconds of discarded warm-up per engine and scenario (default 2)' },
];

const REDIS_SERVER = '/usr/bin/redis-server';
const BODIES = 65_536;

type Key = 'local' | 'redis' | 'everysec';
const KEYS: Key[] = ['local', 'redis', 'everysec'];

/** 1-row bodies; with ids, each distinct, so every request stores a new prediction. */
function bodies(withId: boolean, seed: number): Buffer[] {
  const set = makeBodies('features', 1, 16, BODIES, seed);
  if (!withId) return set.bodies;
  return set.bodies.map((b, i) => Buffer.concat([Buffer.from(`{"id":"bench-${seed}-${i}",`), b.subarray(1)]));
}

async function startRedis(dir: string, fsync: 'always' | 'everysec'): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = startChild('redis', REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', fsync, '--save', ''], { logPath: path.join(dir, `redis-${fsync}.log`) });
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      const net = await import('node:net');
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    },
    'redis-server',
    20_000,
    50,
  );
  return { url, stop: () => stopChild(child, 5000) };
}

async function check(e: EngineProc, body: Buffer, withId: boolean): Promise<void> {
  const a = await request(e.port, 'POST', '/predict', body, { 'content-type': 'application/json' });
  if (a.status !== 200) throw new Error(`${e.name}: ${a.status} ${a.body.toString('utf8').slice(0, 200)}`);
  if (withId && !a.body.toString('utf8').includes('"id":')) throw new Error(`${e.name}: the answer does not echo the id`);
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 6, 1, 20);
  const durationS = numberFlag(flags, 'duration', 4, 1, 60);
  const warmupS = numberFlag(flags, 'warmup', 2, 0, 30);
  setBudget(2 * (3 * warmupS + 3 * rounds * durationS) * 1.3 + 120);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-predict-id-'));
  const loadAtStart = loadLine();
  const redisDirs = { always: path.join(workDir, 'redis-always'), everysec: path.join(workDir, 'redis-everysec') };
  for (const d of Object.values(redisDirs)) fs.mkdirSync(d);
  const redis = await startRedis(redisDirs.always, 'always');
  const redisEverysec = await startRedis(redisDirs.everysec, 'everysec');
  const common = { CACHE_CAPACITY: '0', PREDICTION_ID_CAPACITY: '100000' };
  const engines: Record<Key, EngineProc> = {
    local: await startEngine('predict-id-local', common, workDir),
    redis: await startEngine('predict-id-redis', { ...common, REDIS_URL: redis.url, FEEDBACK_STREAM: 'bench:predict-id' }, workDir),
    everysec: await startEngine('predict-id-everysec', { ...common, REDIS_URL: redisEverysec.url, FEEDBACK_STREAM: 'bench:predict-id' }, workDir),
  };
  const L: string[] = [];
  L.push(`### ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`- Command: \`${commandLine('predict-id.js')}\``, `- Source: ${sourceLine()}`, `- Machine: ${machineLine()}; load average ${loadAtStart} at the start`);
  L.push(`- Engines: three, identical but for REDIS_URL: none (local), a redis-server 7.0 on 127.0.0.1 with appendonly yes and appendfsync always (redis), another with appendfsync everysec (everysec, to tell Redis's fsync from the round trip); CACHE_CAPACITY=0; wrk 1 thread, 64 connections, ${durationS} s runs, ${warmupS} s warm-up discarded, ${rounds} rounds, the engines' order rotated each round`, '');
  L.push('| scenario | engine | req/s | p50 ms | p99 ms | non-2xx | engine CPU | req/s per engine core | other CPU | ÷ local req/s (medians) | per round | p50 ratio | p99 ratio |');
  L.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const [sc, withId, seed] of [['(a) 1 row, a distinct id per request', true, 501], ['(b) 1 row, no id', false, 502]] as const) {
    process.stdout.write(`\n== ${sc}\n`);
    const set = bodies(withId, seed);
    for (const e of Object.values(engines)) await check(e, set[0]!, withId);
    const cursor: Record<Key, number> = { local: 1, redis: 1, everysec: 1 };
    const runs: Record<Key, Measured[]> = { local: [], redis: [], everysec: [] };
    const one = async (key: Key, secs: number): Promise<Measured> => {
      const e = engines[key];
      const m = await measured(e, { port: e.port, path: '/predict', connections: 64, durationS: secs, bodies: set, contentType: 'application/json', startIndex: cursor[key], workDir, id: `predict-id-${seed}` });
      cursor[key] = (cursor[key] + m.run.responses) % set.length;
      await sleep(300);
      return m;
    };
    if (warmupS > 0) for (const key of KEYS) process.stdout.write(runLine(`warm-up ${key}`, await one(key, warmupS), 1));
    for (let r = 0; r < rounds; r++) {
      for (const key of [...KEYS.slice(r % 3), ...KEYS.slice(0, r % 3)]) {
        const m = await one(key, durationS);
        runs[key].push(m);
        process.stdout.write(runLine(`round ${r + 1} ${key}`, m, 1));
      }
    }
    const base = summarize(runs.local, 1);
    for (const key of KEYS) {
      const v = summarize(runs[key], 1);
      const paired = pairedRatios(runs.local, runs[key], (m) => m.run.okPerS);
      const ratios = key !== 'local' ? [`**${fmtRatio(v.reqPerS / base.reqPerS)}**`, `${ratioList(paired)} (median ${fmtRatio(median(paired))})`, fmtRatio(v.p50Us / base.p50Us), fmtRatio(v.p99Us / base.p99Us)] : ['', '', '', ''];
      L.push(`| ${sc} | ${key} | ${fmtCount(v.reqPerS)} | ${fmtMs(v.p50Us)} | ${fmtMs(v.p99Us)} | ${v.non2xx} | ${v.serverCpuPct.toFixed(0)}% | ${fmtCount(v.perCpuS)} | ${v.otherCpuPct.toFixed(0)}% | ${ratios.join(' | ')} |`);
    }
  }
  const held = await request(engines.redis.port, 'GET', '/monitoring/system/info');
  for (const e of Object.values(engines)) await stopEngine(e);
  await redis.stop();
  await redisEverysec.stop();
  L.push('', `- Load average at the end ${loadLine()}; the redis engine answered system info ${held.status}.`);
  process.stdout.write('\n' + L.join('\n') + '\n');
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
