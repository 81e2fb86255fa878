/**
 * Feedback on the Redis stream (issue 13): what it costs and how fast it spreads, all in one run.
 *
 * 1. POST /learn rows/s: an engine on the local feedback log against an engine with REDIS_URL (a
 *    real redis-server with appendonly yes, appendfsync always, started here), identical otherwise,
 *    and a third on a redis-server with appendfsync everysec (what Redis's fsync costs, apart from
 *    the round trip); 64-row bodies at 8 connections with wrk (every answer must be 202), rounds
 *    interleaved in rotating order.
 * 2. POST /predict throughput, 1-row bodies at 32 connections, the same engines: REDIS_URL set
 *    should cost nothing on the prediction path.
 * 3. Replication lag: three replicas on one stream; 64-row /learn requests sent one at a time to
 *    the first; for each, from its 202 to the moment every replica reports having applied it
 *    (GET /models/sgd `updates` polled on each replica without pause), p50 / p99.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/replicas.js [--rounds 3] [--duration 5] [--lag-samples 300] [--out file.md]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeBodies } from './lib/bodies';
import { numberFlag, type FlagSpec } from './lib/args';
import {
  commandLine,
  configDiff,
  engineConfig,
  fmtCount,
  fmtMs,
  fmtRatio,
  getJson,
  loadLine,
  machineLine,
  makeLearnBodies,
  measured,
  median,
  otherList,
  pairedRatios,
  postJson,
  ratioList,
  runLine,
  runScript,
  sourceLine,
  startEngine,
  stopEngine,
  summarize,
  type EngineProc,
  type Measured,
} from './lib/engine-proc';
import { freePort, startChild, stopChild, waitFor, type Child } from './lib/procs';
import { request } from './lib/request';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds per variant and endpoint (default 3)' },
  { name: 'duration', help: 'seconds per measured run (default 5)' },
  { name: 'lag-samples', help: '/learn requests timed for the replication lag (default 300)' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

const F = 16;
const LEARN_ROWS = 64;

/** redis-server as the README asks for it: every write fsynced before Redis answers. */
async function startRedis(workDir: string, fsync: 'always' | 'everysec'): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(workDir, 'redis-'));
  const child = startChild('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', fsync, '--save', ''], {
    logPath: path.join(workDir, `redis-${fsync}.log`),
  });
  await waitFor(
    async () => {
      if (child.exited) throw new Error(`redis-server exited (code ${child.exitCode}); is Debian's redis-server installed?`);
      return request(port, 'GET', '/').then(
        () => true,
        (err: NodeJS.ErrnoException) => err.code !== 'ECONNREFUSED',
      );
    },
    'redis-server listening',
    20_000,
    20,
  );
  return { child, url: `redis://127.0.0.1:${port}` };
}

type Key = 'local' | 'redis' | 'everysec';
const KEYS: readonly Key[] = ['local', 'redis', 'everysec'];
const LABEL: Record<Key, string> = { local: 'local log', redis: 'Redis stream (appendfsync always)', everysec: 'Redis stream (appendfsync everysec)' };

async function abRounds(engines: Record<Key, EngineProc>, rounds: number, durationS: number, spec: { path: string; bodies: Buffer[]; connections: number; workDir: string; id: string }, rows: number, log: (s: string) => void): Promise<Record<Key, Measured[]>> {
  const out: Record<Key, Measured[]> = { local: [], redis: [], everysec: [] };
  const cursor: Record<Key, number> = { local: 0, redis: 0, everysec: 0 };
  const one = async (k: Key, secs: number): Promise<Measured> => {
    const e = engines[k];
    const m = await measured(e, { port: e.port, path: spec.path, connections: spec.connections, durationS: secs, bodies: spec.bodies, contentType: 'application/json', startIndex: cursor[k], workDir: spec.workDir, id: spec.id, countStatuses: true });
    cursor[k] = (cursor[k] + m.run.responses) % spec.bodies.length;
    const good = spec.path === '/learn' ? (m.run.statuses?.['202'] ?? 0) : (m.run.statuses?.['200'] ?? 0);
    m.run.non2xx = m.run.responses - good;
    m.run.ok = good;
    m.run.okPerS = good / m.run.durationS;
    return m;
  };
  for (const k of KEYS) log(runLine(`warm-up ${spec.id} ${k}`, await one(k, 2), rows));
  for (let r = 0; r < rounds; r++) {
    for (const k of KEYS.map((_, i) => KEYS[(i + r) % KEYS.length]!)) {
      const m = await one(k, durationS);
      out[k].push(m);
      log(runLine(`round ${r + 1} ${spec.id} ${k}`, m, rows));
    }
  }
  return out;
}

function tableRows(name: string, runs: Record<Key, Measured[]>, rows: number): string[] {
  const sL = summarize(runs.local, rows);
  return KEYS.map((k) => {
    const s = summarize(runs[k], rows);
    const paired = pairedRatios(runs.local, runs[k], (m) => m.run.okPerS);
    const ratio = k === 'local' ? '' : `**${fmtRatio(s.reqPerS / sL.reqPerS)}** (per round ${ratioList(paired)})`;
    return `| ${name} | ${LABEL[k]} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p99Us)} | ${s.non2xx} / ${s.socketErrors} | ${s.serverCpuPct.toFixed(0)}% | ${otherList(runs[k])} | ${ratio} |`;
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function updatesOf(e: EngineProc): Promise<number> {
  const a = await request(e.port, 'GET', '/models/sgd', undefined, {}, 5000);
  return (JSON.parse(a.body.toString('utf8')) as { updates: number }).updates;
}

/** From each 202 on replica 0 to the first poll showing every replica has applied it. */
async function replicationLag(replicas: EngineProc[], samples: number, bodies: Buffer[]): Promise<number[]> {
  const lags: number[] = [];
  for (let i = 0; i < samples; i++) {
    const a = await postJson(replicas[0]!.port, '/learn', bodies[i % bodies.length]!);
    const t202 = performance.now();
    if (a.status !== 202) throw new Error(`/learn answered ${a.status} ${JSON.stringify(a.json).slice(0, 200)}`);
    const target = (a.json as { sgd_updates: number }).sgd_updates;
    const seen = await Promise.all(
      replicas.slice(1).map(async (e) => {
        for (;;) {
          if ((await updatesOf(e)) >= target) return performance.now();
        }
      }),
    );
    lags.push(Math.max(0, ...seen.map((t) => t - t202)));
  }
  return lags.sort((x, y) => x - y);
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 3, 1, 10);
  const durationS = numberFlag(flags, 'duration', 5, 1, 30);
  const samples = numberFlag(flags, 'lag-samples', 300, 10, 5000);
  setBudget(6 * (rounds + 1) * (durationS + 3) + 240);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-replicas-bench-'));
  const log = (s: string): void => void process.stdout.write(s);
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const redis = await startRedis(workDir, 'always');
  const lazyRedis = await startRedis(workDir, 'everysec');
  const stream = { REDIS_URL: redis.url, FEEDBACK_STREAM: 'bench:learn' };

  // 1 and 2: one engine on each log, identical otherwise.
  const engines: Record<Key, EngineProc> = {
    local: await startEngine('local-log', {}, workDir),
    redis: await startEngine('redis-stream', stream, workDir),
    everysec: await startEngine('redis-everysec', { ...stream, REDIS_URL: lazyRedis.url }, workDir),
  };
  const diff = configDiff(await engineConfig(engines.local), await engineConfig(engines.redis));
  log(`configuration differences: ${diff.join('; ')}\n`);
  const learnBodies = makeLearnBodies(LEARN_ROWS, F, 512, 1301);
  const learn = await abRounds(engines, rounds, durationS, { path: '/learn', bodies: learnBodies, connections: 8, workDir, id: 'learn' }, LEARN_ROWS, log);
  const predictBodies = makeBodies('features', 1, F, 1024, 1302).bodies;
  const predict = await abRounds(engines, rounds, durationS, { path: '/predict', bodies: predictBodies, connections: 32, workDir, id: 'predict' }, 1, log);
  const redisInfo = (await getJson<{ learning: { stream: unknown } }>(engines.redis.port, '/monitoring/system/info')).learning.stream;
  for (const k of KEYS) await stopEngine(engines[k]);
  await stopChild(lazyRedis.child, 5000);

  // 3: three replicas following one stream.
  const lagStream = { REDIS_URL: redis.url, FEEDBACK_STREAM: 'bench:lag', WORKERS: '1' };
  const replicas = [await startEngine('replica-0', lagStream, workDir), await startEngine('replica-1', lagStream, workDir), await startEngine('replica-2', lagStream, workDir)];
  await replicationLag(replicas, 20, learnBodies); // warm-up
  const lags = await replicationLag(replicas, samples, learnBodies);
  for (const e of replicas) await stopEngine(e);
  await stopChild(redis.child, 5000);

  const L: string[] = [];
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`- Command: \`${commandLine('replicas.js')}\``);
  L.push(`- Source: ${sourceLine()}`);
  L.push(`- Machine: ${machineLine()}; load average ${loadAtStart} at the start, ${loadLine()} at the end`);
  L.push(`- Redis: Debian's redis-server on 127.0.0.1 with \`--appendonly yes --appendfsync always\` (every acknowledged record fsynced by Redis, the local log's promise), and a second one with \`--appendfsync everysec\` for the third engine; engines differ only in ${diff.map((d) => '`' + d.split(':')[0] + '`').join(', ')}; otherwise defaults`);
  L.push(`- Load: wrk, ${rounds} rounds of ${durationS} s per variant interleaved after a 2 s warm-up each; /learn 64-row bodies (512 seeded) at 8 connections, /predict 1-row bodies at 32 connections; rows/s count 202 (/learn) and 200 (/predict) answers only`);
  L.push('');
  L.push('| endpoint | feedback | requests/s | rows/s | p50 ms | p99 ms | wrong status / socket err | engine CPU | other CPU per round | ÷ local log (medians) |');
  L.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |');
  L.push(...tableRows('/learn', learn, LEARN_ROWS), ...tableRows('/predict', predict, 1));
  L.push('');
  L.push(`Replication lag, three replicas (WORKERS=1 each) on one stream, ${samples} /learn requests of 64 rows sent one at a time to replica 0 (after 20 discarded): from its 202 to every other replica reporting the update (GET /models/sgd polled back to back): p50 **${lags.length ? percentile(lags, 50).toFixed(2) : '-'} ms**, p90 ${percentile(lags, 90).toFixed(2)} ms, p99 **${percentile(lags, 99).toFixed(2)} ms**, max ${lags.at(-1)!.toFixed(2)} ms (a poll's own round trip, ~0.2-0.5 ms here, is included; 0 when the others had applied it before the 202 reached the client).`);
  L.push('');
  L.push(`Stream stats of the Redis engine at the end of its runs: \`${JSON.stringify(redisInfo)}\``);
  const md = L.join('\n') + '\n';
  log('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
