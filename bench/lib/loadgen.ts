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
import * as path from 'node:path';
import type { BodySet } from './bodies';
import { LatencySample, percentile } from './stats';
import { runWrk, type WrkResult } from './wrk';

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

/** What either generator measured; `tool` says which. */
export type RunResult = Omit<WrkResult, 'statuses'> & { tool: Tool };

async function runWrkLoad(spec: LoadSpec): Promise<RunResult> {
  const { statuses: _, ...run } = await runWrk({
    workDir: spec.workDir,
    id: spec.id,
    bodies: spec.set.bodies,
    contentType: spec.set.contentType,
    headers: spec.set.headers,
    path: spec.path ?? '/predict',
    port: spec.port,
    connections: spec.connections,
    durationS: spec.durationS,
    startIndex: spec.startIndex,
    threads: spec.threads,
    logPath: path.join(spec.workDir, `${spec.id}.wrk.log`),
  });
  return { tool: 'wrk', ...run };
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
      list.push({ method: 'POST', path: spec.path ?? '/predict', headers: { ...spec.set.headers, 'content-type': spec.set.contentType }, body: bodies[(first + i) % bodies.length]! });
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
        headers: { ...spec.set.headers, 'content-type': spec.set.contentType },
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
  return tool === 'wrk' ? runWrkLoad(spec) : runAutocannon(spec);
}
