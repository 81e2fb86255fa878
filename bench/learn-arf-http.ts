/**
 * What the adaptive random forest costs /learn (issue 16: "/learn throughput with arf enabled
 * against without, same run"). Two engines, identical but for ARF_ENABLED (true / false), the
 * bundled ensemble (16 features), otherwise defaults; bodies {"instances":[64 rows],"labels":[64]}
 * (seeded, 512 distinct, rotated) at 8 connections with wrk, counting every answer by status (each
 * must be 202). Interleaved: a warm-up of each (discarded), then rounds A B, B A, ...
 *
 *   npx tsc -p tsconfig.json && node dist/bench/learn-arf-http.js [--rounds 4] [--duration 8] [--warmup 3] [--fsync true|false] [--out file.md]
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
  machineLine,
  makeLearnBodies,
  measured,
  median,
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

const FLAGS: FlagSpec[] = [
  { name: 'rounds', help: 'measured rounds per variant (default 4)' },
  { name: 'duration', help: 'seconds per measured run (default 8)' },
  { name: 'warmup', help: 'seconds of discarded warm-up per variant (default 3)' },
  { name: 'fsync', help: 'FEEDBACK_FSYNC of both engines (default true)' },
  { name: 'out', help: 'also write the markdown section to this file' },
];

const ROWS = 64;
const CONNECTIONS = 8;
const BODIES = 512;
const KEYS = ['arf', 'no-arf'] as const;
type Key = (typeof KEYS)[number];

async function main(flags: Map<string, string>, setBudget: (s: number) => void): Promise<number> {
  const rounds = numberFlag(flags, 'rounds', 4, 1, 20);
  const durationS = numberFlag(flags, 'duration', 8, 1, 60);
  const warmupS = numberFlag(flags, 'warmup', 3, 0, 30);
  const fsync = flags.get('fsync') ?? 'true';
  if (fsync !== 'true' && fsync !== 'false') throw new UsageError('--fsync takes true or false');
  const budgetS = (2 * warmupS + 2 * rounds * durationS) * 1.25 + 90;
  if (budgetS > 290) throw new UsageError(`these settings would take about ${Math.round(budgetS)} s; keep them under 290 s`);
  setBudget(budgetS + 60);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradeflow-learn-arf-'));
  const startedAt = new Date();
  const loadAtStart = loadLine();
  const bodies = makeLearnBodies(ROWS, 16, BODIES, 601);
  const engines = new Map<Key, EngineProc>();
  for (const key of KEYS) engines.set(key, await startEngine(`learn-${key}`, { ARF_ENABLED: key === 'arf' ? 'true' : 'false', FEEDBACK_FSYNC: fsync }, workDir));
  const diff = configDiff(await engineConfig(engines.get('arf')!), await engineConfig(engines.get('no-arf')!));
  if (diff.length !== 1 || !diff[0]!.startsWith('ARF_ENABLED')) throw new Error(`the engines should differ in ARF_ENABLED only, got: ${diff.join('; ')}`);
  for (const e of engines.values()) {
    const a = await postJson(e.port, '/learn', bodies[0]!);
    if (a.status !== 202) throw new Error(`${e.name}: /learn check answered ${a.status} ${JSON.stringify(a.json).slice(0, 300)}`);
  }
  const cursor: Record<Key, number> = { arf: 1, 'no-arf': 1 };
  const runs: Record<Key, Measured[]> = { arf: [], 'no-arf': [] };
  const one = async (key: Key, secs: number): Promise<Measured> => {
    const e = engines.get(key)!;
    const m = await measured(e, { port: e.port, path: '/learn', connections: CONNECTIONS, durationS: secs, bodies, contentType: 'application/json', startIndex: cursor[key], workDir, id: 'learn', countStatuses: true });
    cursor[key] = (cursor[key] + m.run.responses) % bodies.length;
    const n202 = m.run.statuses?.['202'] ?? 0;
    m.run.non2xx = m.run.responses - n202;
    m.run.ok = n202;
    m.run.okPerS = n202 / m.run.durationS;
    return m;
  };
  if (warmupS > 0) for (const key of KEYS) process.stdout.write(runLine(`warm-up ${key}`, await one(key, warmupS), ROWS));
  for (let round = 0; round < rounds; round++) {
    const order: readonly Key[] = round % 2 === 0 ? KEYS : [...KEYS].reverse();
    for (const key of order) {
      const r = await one(key, durationS);
      runs[key].push(r);
      process.stdout.write(runLine(`round ${round + 1} ${key}`, r, ROWS));
    }
  }
  const forest = (await getJson<Record<string, unknown>>(engines.get('arf')!.port, '/models/arf')) as { rows_learned: number; nodes: number; trees_replaced: number };
  for (const e of engines.values()) await stopEngine(e);

  const sA = summarize(runs.arf, ROWS);
  const sN = summarize(runs['no-arf'], ROWS);
  const paired = pairedRatios(runs['no-arf'], runs.arf, (m) => m.run.okPerS);
  const L: string[] = [];
  L.push(`### ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, FEEDBACK_FSYNC=${fsync}`, '');
  L.push(`- Command: \`${commandLine('learn-arf-http.js')}\``);
  L.push(`- Source: ${sourceLine()}`);
  L.push(`- Machine: ${machineLine()}; load average ${loadAtStart} at the start, ${loadLine()} at the end`);
  L.push(`- Load: wrk, ${CONNECTIONS} connections, ${durationS} s per run, ${rounds} rounds interleaved; ${BODIES} seeded bodies of ${ROWS} labelled rows of 16 features`);
  L.push('');
  L.push('| ARF_ENABLED | requests/s | rows/s | p50 ms | p95 ms | p99 ms | non-202 / socket err | engine CPU | other CPU | requests/s per round | ÷ without (medians) | ÷ without per round |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |');
  for (const key of KEYS) {
    const s = key === 'arf' ? sA : sN;
    const ratio = key === 'arf' ? `**${fmtRatio(sA.reqPerS / sN.reqPerS)}**` : '';
    const per = key === 'arf' ? `${ratioList(paired)} (median ${fmtRatio(median(paired))})` : '';
    L.push(`| ${key === 'arf'} | ${fmtCount(s.reqPerS)} | ${fmtCount(s.rowsPerS)} | ${fmtMs(s.p50Us)} | ${fmtMs(s.p95Us)} | ${fmtMs(s.p99Us)} | ${s.non2xx} / ${s.socketErrors} | ${s.serverCpuPct.toFixed(0)}% | ${s.otherCpuPct.toFixed(0)}% | ${s.perRound.map(fmtCount).join(' / ')} | ${ratio} | ${per} |`);
  }
  L.push('', `The forest at the end: ${forest.rows_learned} rows learned, ${forest.nodes} nodes over its trees, ${forest.trees_replaced} trees replaced.`);
  const md = L.join('\n') + '\n';
  process.stdout.write('\n' + md);
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, md);
  fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

runScript(FLAGS, main);
