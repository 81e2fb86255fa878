/**
 * Child processes for the HTTP benchmark: every child gets its own process group so the harness
 * can stop it and anything it started; all of them are killed when the harness exits, fails or is
 * interrupted. Also free ports, readiness polling, small HTTP requests and per-process CPU time.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';

export interface Child {
  name: string;
  proc: ChildProcess;
  logPath: string | null;
  exited: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  exitPromise: Promise<void>;
}

const children = new Set<Child>();

function killGroup(c: Child, signal: NodeJS.Signals): void {
  if (c.exited || c.proc.pid === undefined) return;
  try {
    process.kill(-c.proc.pid, signal);
  } catch {
    try {
      c.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Starts a child in its own process group, output to `logPath` (or ignored / piped). */
export function startChild(name: string, cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logPath?: string; pipeStdout?: boolean }): Child {
  let logFd: number | null = null;
  if (opts.logPath) logFd = fs.openSync(opts.logPath, 'a');
  const out = opts.pipeStdout ? 'pipe' : logFd ?? 'ignore';
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', out, logFd ?? (opts.pipeStdout ? 'pipe' : 'ignore')],
  };
  const proc = spawn(cmd, [...args], spawnOpts);
  if (logFd !== null) fs.closeSync(logFd);
  const child: Child = { name, proc, logPath: opts.logPath ?? null, exited: false, exitCode: null, exitSignal: null, exitPromise: Promise.resolve() };
  child.exitPromise = new Promise<void>((resolve) => {
    proc.on('exit', (code, signal) => {
      child.exited = true;
      child.exitCode = code;
      child.exitSignal = signal;
      children.delete(child);
      resolve();
    });
    proc.on('error', (err) => {
      child.exited = true;
      child.exitCode = -1;
      children.delete(child);
      if (child.logPath) fs.appendFileSync(child.logPath, `spawn error: ${err.message}\n`);
      resolve();
    });
  });
  children.add(child);
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(c: Child, graceMs = 5000): Promise<void> {
  if (c.exited) return;
  killGroup(c, 'SIGTERM');
  const timer = setTimeout(() => killGroup(c, 'SIGKILL'), graceMs);
  await c.exitPromise;
  clearTimeout(timer);
}

export async function stopAll(graceMs = 3000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}

/** Synchronous last resort, for process 'exit'. */
export function killAllNow(): void {
  for (const c of children) killGroup(c, 'SIGKILL');
}

let handlersInstalled = false;

/** Kills every child on exit, Ctrl-C, SIGTERM and uncaught errors. */
export function installExitHandlers(onFatal: (err: unknown) => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllNow);
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\n${signal}: stopping the servers and the load generator\n`);
    void stopAll(2000).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
}

export function tail(path: string | null, lines = 20): string {
  if (!path) return '';
  try {
    return fs.readFileSync(path, 'utf8').split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '';
  }
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh connection to 127.0.0.1. */
export function request(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent: false, headers: body ? { ...headers, 'Content-Length': String(body.length) } : headers, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `path` until it answers 200; fails early if the child exits. */
export async function waitReady(c: Child, port: number, path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (c.exited) {
      throw new Error(`${c.name} exited (code ${c.exitCode}, signal ${c.exitSignal}) before it was ready\n${tail(c.logPath)}`);
    }
    try {
      const a = await request(port, 'GET', path, undefined, {}, 1000);
      if (a.status === 200) return;
      last = `${a.status} ${a.body.toString('utf8').slice(0, 300)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${c.name} was not ready on port ${port} within ${timeoutMs / 1000} s (last: ${last})\n${tail(c.logPath)}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let clockTicks: number | null = null;

function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds of a live process (all its threads), or NaN. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces: fields are counted after the closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds the whole machine spent busy (user, nice, system, irq, softirq and steal over all
 * cores) since boot, from /proc/stat; NaN where unavailable.
 */
export function machineBusySeconds(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / ticksPerSecond();
  } catch {
    return NaN;
  }
}
