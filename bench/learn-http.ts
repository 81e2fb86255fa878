/**
 * POST /learn over HTTP (issue 6: "/learn rows/s over HTTP with 64-row requests at 8
 * connections, with and without the fsync (report both)"). Two engines, identical but for
 * FEEDBACK_FSYNC (true / false); bodies {"instances":[64 rows of 16 numbers],"labels":[64 × 0/1]}
 * (seeded, 512 distinct, rotated) at 8 connections with wrk, which counts every answer by status:
 * each must be 202. Interleaved: warm-up of each engine (discarded), then rounds A B, B A, ...
 * Group commit is read from GET /monitoring/system/info → learning.log (appended, groups,
 * fsyncs) before and after each measured run.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/learn-http.js [--rounds 5] [--duration 8] [--warmup 3] [--out file.md]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError, numberFlag, type FlagSpec } from './lib/args';
import {
  commandLine,
  configDiff,
  engineConfig,
  fmtCount,
  fmtMs,
  fmtRatio,
  getJson,
  loadLine,
  logProblems,
  machineLine,
  sourceLine,
  makeLearnBodies,
  measured,
  median,
  otherList,
  pairedRatios,
  quietPairs,
  postJson,
  ratioList,
  runLine,
  runScript,
  sleep,
  startEngine,
  stopEngine,
  summarize,
  WRK_PATH,
  type EngineProc,
  type Measured,
} from './lib/engine-proc';

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds per variant (default 5)' },
  { name: 'duration', help: 'seconds per measured run (default 8)' },
  { name: 'warmup', help: 'seconds of discarded warm-up per variant (default 3)' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

const ROWS = 64;
const CONNECTIONS = 8;
const BODIES = 512;

/** A run is "quiet" when other processes used less than this share of a core meanwhile (%). */
const QUIET_PCT = 35;

const VARIANTS = [
  { key: 'fsync', env: { FEEDBACK_FSYNC: 'true' } },
  { key: 'no-fsync', env: { FEEDBACK_FSYNC: 'false' } },
] as const;
type Key = (typeof VARIANTS)[number]['key'];

interface LogStats {
  appended: number;
  groups: number;
  fsyncs: number;
  bytes: number;
  rejected: number;
  maxGroupRecords: number;
}

interface Learning {
  examples_learned: number;
  replay_buffer_rows: number;
  log: LogStats;
}

async function learning(e: EngineProc): Promise<Learning> {
  return (await getJson<{ learning: Learning }>(e.port, '/monitoring/system/info')).learning;
}

interface Run extends Measured {
  log: { appended: number; groups: number; fsyncs: number; bytes: number };
  statuses: Record<string, number>;
}

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 5, 1, 20);
  const durationS = numberFlag(flags, 'duration', 8, 1, 60);
  const warmupS = numberFlag(flags, 'warmup', 3, 0, 30);
  const budgetS = (2 * warmupS + 2 * rounds * durationS) * 1.25 + 90;
  if (budgetS > 290) throw new UsageError(`these settings would take about ${Math.round(budgetS)} s; keep them under 290 s`);
  setBudget(budgetS + 60);

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-learn-http-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const source = sourceLine();
  process.stdout.write(`work dir ${workDir}; load average ${loadAtStart}\n`);
  const bodies = makeLearnBodies(ROWS, 16, BODIES, 601);

  const engines = new Map<Key, EngineProc>();
  for (const v of VARIANTS) engines.set(v.key, await startEngine(`learn-${v.key}`, { ...v.env }, workDir));
  const diff = configDiff(await engineConfig(engines.get('fsync')!), await engineConfig(engines.get('no-fsync')!));
  process.stdout.write(`configuration differences: ${diff.join('; ') || 'none'}\n`);
  if (diff.length !== 1 || !diff[0]!.startsWith('FEEDBACK_FSYNC')) throw new Error(`the engines should differ in FEEDBACK_FSYNC only, got: ${diff.join('; ')}`);
  const cfg = await engineConfig(engines.get('fsync')!);
  const stateFs = (() => {
    try {
      return fs.statfsSync(engines.get('fsync')!.stateDir).type.toString(16);
    } catch {
      return 'unknown';
    }
  })();

  for (const e of engines.values()) {
    const a = await postJson(e.port, '/learn', bodies[0]!);
    const ok = a.status === 202 && (a.json as { accepted?: number }).accepted === ROWS;
    if (!ok) throw new Error(`${e.name}: /learn check answered ${a.status} ${JSON.stringify(a.json).slice(0, 300)}`);
    process.stdout.write(`${e.name}: /learn check ${a.status} ${JSON.stringify(a.json)}\n`);
  }

  const cursor: Record<Key, number> = { fsync: 1, 'no-fsync': 1 };
  const runs: Record<Key, Run[]> = { fsync: [], 'no-fsync': [] };
  const allStatuses: Record<Key, Record<string, number>> = { fsync: {}, 'no-fsync': {} };
  const one = async (key: Key, secs: number): Promise<Run> => {
    const e = engines.get(key)!;
    const before = await learning(e);
    const m = await measured(e, {
      port: e.port, path: '/learn', connections: CONNECTIONS, durationS: secs, bodies, contentType: 'application/json',
      startIndex: cursor[key], workDir, id: 'learn', countStatuses: true,
    });
    await sleep(300);
    const after = await learning(e);
    cursor[key] = (cursor[key] + m.run.responses) % bodies.length;
    const statuses = m.run.statuses ?? {};
    for (const [k, v] of Object.entries(statuses)) allStatuses[key][k] = (allStatuses[key][k] ?? 0) + v;
    // 202 is the only right answer: anything else counts as an error here.
    const n202 = statuses['202'] ?? 0;
    m.run.non2xx = m.run.responses - n202;
    m.run.ok = n202;
    m.run.okPerS = n202 / m.run.durationS;
    const d = (k: keyof LogStats): number => after.log[k] - before.log[k];
    return { ...m, statuses, log: { appended: d('appended'), groups: d('groups'), fsyncs: d('fsyncs'), bytes: d('bytes') } };
  };
  const describe = (r: Run): string =>
    `      statuses ${JSON.stringify(r.statuses)}; log: ${r.log.appended} records, ${r.log.groups} groups, ${r.log.fsyncs} fsyncs (${r.log.fsyncs > 0 ? (r.log.appended / r.log.fsyncs).toFixed(2) : 'n/a'} records per fsync), ${(r.log.bytes / 2 ** 20).toFixed(1)} MiB\n`;

  if (warmupS > 0) {
    for (const v of VARIANTS) {
      const r = await one(v.key, warmupS);
      process.stdout.write(runLine(`warm-up ${v.key}`, r, ROWS) + describe(r));
    }
  }
  for (let round = 0; round < rounds; round++) {
    const order: Key[] = round % 2 === 0 ? ['fsync', 'no-fsync'] : ['no-fsync', 'fsync'];
    for (const key of order) {
      const r = await one(key, durationS);
      runs[key].push(r);
      process.stdout.write(runLine(`round ${round + 1} ${key}`, r, ROWS) + describe(r));
    }
  }
  const finals = new Map<Key, Learning>();
  for (const v of VARIANTS) finals.set(v.key, await learning(engines.get(v.key)!));
  const logLines = [...engines.values()].flatMap((e) => logProblems(e).filter((l) => !l.includes('no ADMIN_TOKEN')).map((l) => `${e.name}: ${l}`));
  for (const e of engines.values()) await stopEngine(e);
  const loadAtEnd = loadLine();

  // ---- report
  const L: string[] = [];
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`- Command: \`${commandLine('learn-http.js')}\``);
  L.push(`- Source: ${source}`);
  L.push(`- Machine: ${machineLine()}; load average (1 / 5 / 15 min) ${loadAtStart} at the start, ${loadAtEnd} at the end; state directories under ${os.tmpdir()} (filesystem magic 0x${stateFs}${stateFs === 'ef53' ? ', ext4 on a virtual disk' : ''})`);
  L.push(`- Engines: two, started together, identical but for \`FEEDBACK_FSYNC\` (checked on /monitoring/system/info), otherwise defaults (WORKERS=${cfg.WORKERS}, FEEDBACK_COMMIT_INTERVAL_MS=${cfg.FEEDBACK_COMMIT_INTERVAL_MS}, CHECKPOINT_INTERVAL_S=${cfg.CHECKPOINT_INTERVAL_S}, REPLAY_BUFFER_ROWS=${cfg.REPLAY_BUFFER_ROWS}, METRICS_ENABLED=${cfg.METRICS_ENABLED}), no ADMIN_TOKEN (loopback clients)`);
  L.push(`- Load: wrk (${WRK_PATH}, 1 thread, a Lua response() callback counting every status), 127.0.0.1, ${CONNECTIONS} connections, ${durationS} s per run, ${warmupS} s warm-up per engine discarded, ${rounds} rounds interleaved (fsync no-fsync, no-fsync fsync, ...); ${BODIES} distinct seeded bodies of ${ROWS} labelled rows (16 features, 8 significant digits, labels from a noisy rule on the features), ~${fmtCount(bodies.reduce((s, b) => s + b.length, 0) / bodies.length / 1024)} KiB each`);
  L.push('');
  L.push('| FEEDBACK_FSYNC | requests/s | rows/s | p50 ms | p95 ms | p99 ms | non-202 / socket err | records per fsync | records per group | engine CPU | other CPU | load avg (1 min) | requests/s per round | other CPU per round | ÷ no-fsync (medians) | ÷ no-fsync per round |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |');
  const sF = summarize(runs.fsync, ROWS);
  const sN = summarize(runs['no-fsync'], ROWS);
  const paired = pairedRatios(runs['no-fsync'], runs.fsync, (m) => m.run.okPerS);
  for (const key of ['fsync', 'no-fsync'] as const) {
    const s = key === 'fsync' ? sF : sN;
    const rs = runs[key];
    const appended = rs.reduce((a, r) => a + r.log.appended, 0);
    const groups = rs.reduce((a, r) => a + r.log.groups, 0);
    const fsyncs = rs.reduce((a, r) => a + r.log.fsyncs, 0);
    const errs = s.non2xx + s.socketErrors > 0 ? `**${s.non2xx} / ${s.socketErrors}** ⚠` : `${s.non2xx} / ${s.socketErrors}`;
    L.push(
      `| ${key === 'fsync' ? 'true' : 'false'} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${errs} | ${fsyncs > 0 ? (appended / fsyncs).toFixed(2) : `— (${fsyncs} fsyncs)`} | ${groups > 0 ? (appended / groups).toFixed(2) : 'n/a'} | ${s.serverCpuPct.toFixed(0)}% | ${s.otherCpuPct.toFixed(0)}% | ${s.load1.toFixed(2)} | ${s.perRound.map(fmtCount).join(' / ')} | ${otherList(rs)} | ${key === 'fsync' ? `**${fmtRatio(sF.reqPerS / sN.reqPerS)}**` : ''} | ${key === 'fsync' ? `${ratioList(paired)} (median ${fmtRatio(median(paired))})` : ''} |`,
    );
  }
  const quiet = quietPairs(runs['no-fsync'], runs.fsync, QUIET_PCT);
  L.push('');
  L.push(
    `With the fsync ÷ without: ${fmtRatio(sF.reqPerS / sN.reqPerS)} of the medians, ${fmtRatio(median(paired))} median of the paired rounds; ` +
      `rounds where other processes used < ${QUIET_PCT}% of a core during both runs: ${quiet.length ? `${quiet.length} (${ratioList(quiet.map((i) => paired[i]!))})` : 'none'}. ` +
      `Rows/s: ${fmtCount(sF.rowsPerS)} with the fsync, ${fmtCount(sN.rowsPerS)} without.`,
  );
  L.push('');
  L.push('requests/s and rows/s count 202 answers; a row is one labelled example. Records, groups and fsyncs are the differences of `learning.log.appended`, `.groups` and `.fsyncs` (GET /monitoring/system/info) over the measured runs (one record per /learn request); "records per group" is the group-commit size. CPU is a percentage of one core (2 cores in all); "other" is everything else on the machine (other jobs, the idle engine, VM steal).');
  L.push('');
  L.push('Per measured run (log counters):');
  L.push('');
  L.push('| run | FEEDBACK_FSYNC | requests/s | p99 ms | other CPU | records | groups | fsyncs | records per fsync | MiB written | statuses |');
  L.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (let round = 0; round < rounds; round++) {
    for (const key of ['fsync', 'no-fsync'] as const) {
      const r = runs[key][round];
      if (!r) continue;
      L.push(`| ${round + 1} | ${key === 'fsync' ? 'true' : 'false'} | ${fmtCount(r.run.okPerS)} | ${fmtMs(r.run.p99Us)} | ${r.otherCpuPct.toFixed(0)}% | ${r.log.appended} | ${r.log.groups} | ${r.log.fsyncs} | ${r.log.fsyncs > 0 ? (r.log.appended / r.log.fsyncs).toFixed(2) : '—'} | ${(r.log.bytes / 2 ** 20).toFixed(1)} | ${Object.entries(r.statuses).map(([k, v]) => `${k}: ${v}`).join(', ')} |`);
    }
  }
  L.push('');
  L.push('Checks:');
  L.push('');
  for (const key of ['fsync', 'no-fsync'] as const) {
    const f = finals.get(key)!;
    const st = Object.entries(allStatuses[key]).map(([k, v]) => `${k}: ${v}`).join(', ');
    L.push(`- ${key}: statuses over every run including warm-up ${st || 'none'}; at the end ${f.examples_learned} examples learned, replay buffer ${f.replay_buffer_rows} rows, log ${f.log.appended} records / ${f.log.groups} groups / ${f.log.fsyncs} fsyncs, largest group ${f.log.maxGroupRecords} records, ${f.log.rejected} appends refused (FEEDBACK_BACKLOG)`);
  }
  L.push(`- engine log lines at warn or above (besides the no-ADMIN_TOKEN notice): ${logLines.length}${logLines.length ? ': ' + logLines.slice(0, 5).join('; ') : ''}`);
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
