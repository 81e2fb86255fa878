/**
 * Load generators for the HTTP benchmark, behind one interface:
 *  - wrk (Debian's /usr/bin/wrk, preferred: C + LuaJIT, less CPU on a 2-core machine), driven by
 *    a generated Lua script that rotates pre-built requests read from a bodies file;
 *  - autocannon (npm, in-process), rotating a list of pre-built requests. Its own latency
 *    histogram has 1 ms resolution, so latencies are taken from its per-response event instead.
 * Both report successful answers per second, latency percentiles in microseconds, non-2xx and
 * socket errors, and the CPU seconds the load generator itself used.
 */
import autocannon from 'autocannon';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BodySet } from './bodies';
import { LatencySample, percentile } from './stats';
import { startChild, tail } from './procs';
import { parseTimes, wrkScript } from './wrk-script';

export type Tool = 'wrk' | 'autocannon';

export interface LoadSpec {
  port: number;
  connections: number;
  durationS: number;
  set: BodySet;
  /** wrk threads (ignored by autocannon). */
  threads: number;
  /** Scratch directory for scripts and logs. */
  workDir: string;
  /** A short name for files (scenario id). */
  id: string;
  /**
   * Index of the first body to send. The caller continues where the previous run on the same
   * server stopped, so a server-side cache (LRU) smaller than the body set never sees a repeat.
   */
  startIndex: number;
  path?: string;
}

export interface RunResult {
  tool: Tool;
  durationS: number;
  /** Completed answers, any status. */
  responses: number;
  /** 2xx answers. */
  ok: number;
  /** Answers with a status >= 400 (wrk) or non-2xx (autocannon). */
  non2xx: number;
  /** Connect, read, write errors and timeouts. */
  socketErrors: number;
  okPerS: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  maxUs: number;
  /** CPU seconds (user + system) the load generator used during the run. */
  loadgenCpuS: number;
}

export const WRK_PATH = '/usr/bin/wrk';

export function wrkAvailable(): boolean {
  try {
    fs.accessSync(WRK_PATH, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function runWrk(spec: LoadSpec): Promise<RunResult> {
  const script = wrkScript({ workDir: spec.workDir, id: spec.id, bodies: spec.set.bodies, contentType: spec.set.contentType, path: spec.path ?? '/predict' });
  const threads = Math.max(1, Math.min(spec.threads, spec.connections));
  const args = ['-c', 'wrk "$@"; rc=$?; times; exit $rc', 'wrk',
    '-t', String(threads), '-c', String(spec.connections), '-d', `${spec.durationS}s`, '--timeout', '10s',
    '-s', script, `http://127.0.0.1:${spec.port}${spec.path ?? '/predict'}`, '--', String(spec.startIndex), String(threads)];
  const logPath = path.join(spec.workDir, `${spec.id}.wrk.log`);
  const child = startChild('wrk', 'bash', args, { pipeStdout: true });
  let out = '';
  child.proc.stdout!.setEncoding('utf8');
  child.proc.stdout!.on('data', (s: string) => (out += s));
  let err = '';
  child.proc.stderr!.setEncoding('utf8');
  child.proc.stderr!.on('data', (s: string) => (err += s));
  const killer = setTimeout(() => child.proc.pid !== undefined && process.kill(-child.proc.pid, 'SIGKILL'), (spec.durationS + 30) * 1000);
  await child.exitPromise;
  clearTimeout(killer);
  fs.appendFileSync(logPath, out + err);
  const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
  if (child.exitCode !== 0 || !line) {
    throw new Error(`wrk failed (exit ${child.exitCode}, signal ${child.exitSignal}):\n${out}${err}${tail(logPath, 5)}`);
  }
  const r = JSON.parse(line.slice('@@RESULT '.length)) as Record<string, number>;
  const durationS = r.duration_us! / 1e6;
  const responses = r.requests!;
  const ok = responses - r.status!;
  return {
    tool: 'wrk',
    durationS,
    responses,
    ok,
    non2xx: r.status!,
    socketErrors: r.connect! + r.read! + r.write! + r.timeout!,
    okPerS: ok / durationS,
    p50Us: r.p50!,
    p95Us: r.p95!,
    p99Us: r.p99!,
    maxUs: r.max!,
    loadgenCpuS: parseTimes(out),
  };
}

/**
 * Each connection gets its own slice of the bodies (autocannon cycles a connection through its
 * list; a list passed in the options would be deep-copied per connection), so all of them are
 * used and each request buffer is built once.
 */
function autocannonSetup(spec: LoadSpec): (client: autocannon.Client) => void {
  const bodies = spec.set.bodies;
  const per = Math.max(1, Math.floor(bodies.length / spec.connections));
  let next = 0;
  return (client) => {
    const first = spec.startIndex + next++ * per;
    const list: autocannon.Request[] = [];
    for (let i = 0; i < per; i++) {
      list.push({ method: 'POST', path: spec.path ?? '/predict', headers: { 'content-type': spec.set.contentType }, body: bodies[(first + i) % bodies.length]! });
    }
    client.setRequests(list);
  };
}

async function runAutocannon(spec: LoadSpec): Promise<RunResult> {
  const sample = new LatencySample();
  const cpu0 = process.cpuUsage();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon(
      {
        url: `http://127.0.0.1:${spec.port}${spec.path ?? '/predict'}`,
        connections: spec.connections,
        duration: spec.durationS,
        timeout: 10,
        method: 'POST',
        headers: { 'content-type': spec.set.contentType },
        body: spec.set.bodies[spec.startIndex % spec.set.bodies.length]!,
        setupClient: autocannonSetup(spec),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    inst.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) sample.add(responseTime * 1000);
    });
  });
  const cpu = process.cpuUsage(cpu0);
  const sorted = sample.sorted();
  const ok = result['2xx'];
  const durationS = result.duration;
  return {
    tool: 'autocannon',
    durationS,
    responses: ok + result.non2xx,
    ok,
    non2xx: result.non2xx,
    socketErrors: result.errors,
    okPerS: ok / durationS,
    p50Us: percentile(sorted, 50),
    p95Us: percentile(sorted, 95),
    p99Us: percentile(sorted, 99),
    maxUs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
  };
}

export function runLoad(tool: Tool, spec: LoadSpec): Promise<RunResult> {
  return tool === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}
