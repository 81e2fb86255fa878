/**
 * Child processes for the benchmarks and the tests (which import this file from its source):
 * start one, wait until it serves or until a condition holds, stop it. Every child gets its own
 * process group, so stopping it also stops anything it started, and a harness that exits, fails
 * or is interrupted kills whatever is still running (installExitHandlers).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { request } from './request';

export interface Child {
  name: string;
  proc: ChildProcess;
  logPath: string | null;
  exited: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  exitPromise: Promise<void>;
  /** What the child printed so far (stdout and stderr), when started with `capture`. */
  output(): string;
}

export interface ChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Append stdout and stderr to this file. */
  logPath?: string;
  /** Leave stdout (and stderr, without a log file) as pipes for the caller to read. */
  pipeStdout?: boolean;
  /** Keep stdout and stderr in memory, for `output()`. */
  capture?: boolean;
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

function stdioFor(opts: ChildOptions, logFd: number | null): SpawnOptions['stdio'] {
  if (opts.capture) return ['ignore', 'pipe', 'pipe'];
  const out = opts.pipeStdout ? 'pipe' : logFd ?? 'ignore';
  return ['ignore', out, logFd ?? (opts.pipeStdout ? 'pipe' : 'ignore')];
}

/** Starts a child in its own process group; its output goes to `logPath`, memory, pipes or nowhere. */
export function startChild(name: string, cmd: string, args: readonly string[], opts: ChildOptions = {}): Child {
  const logFd = opts.logPath && !opts.capture ? fs.openSync(opts.logPath, 'a') : null;
  const proc = spawn(cmd, [...args], { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: stdioFor(opts, logFd) });
  if (logFd !== null) fs.closeSync(logFd);
  let captured = '';
  if (opts.capture) {
    proc.stdout!.on('data', (c: Buffer) => (captured += c.toString('utf8')));
    proc.stderr!.on('data', (c: Buffer) => (captured += c.toString('utf8')));
  }
  const child: Child = { name, proc, logPath: opts.logPath ?? null, exited: false, exitCode: null, exitSignal: null, exitPromise: Promise.resolve(), output: () => captured };
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
      captured += `spawn error: ${err.message}\n`;
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

/** The last `lines` lines of a file ('' when there is none). */
export function tail(path: string | null, lines = 20): string {
  if (!path) return '';
  try {
    return lastLines(fs.readFileSync(path, 'utf8'), lines);
  } catch {
    return '';
  }
}

function lastLines(text: string, lines: number): string {
  return text.split('\n').slice(-lines - 1).join('\n');
}

/** The end of what a child printed: its log file, or what was captured. */
export function recentOutput(c: Child, lines = 20): string {
  return c.logPath ? tail(c.logPath, lines) : lastLines(c.output(), lines);
}

/** A port the OS just handed out (closed again for the caller's server to take). */
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

/** Polls `path` on 127.0.0.1:`port` until it answers 200; fails early if the child exits. */
export async function waitReady(c: Child, port: number, path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (c.exited) {
      throw new Error(`${c.name} exited (code ${c.exitCode}, signal ${c.exitSignal}) before it was ready\n${recentOutput(c)}`);
    }
    try {
      const a = await request(port, 'GET', path, undefined, {}, 1000);
      if (a.status === 200) return;
      last = `${a.status} ${a.body.toString('utf8').slice(0, 300)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${c.name} was not ready on port ${port} within ${timeoutMs / 1000} s (last: ${last})\n${recentOutput(c)}`);
}

/** Polls `check` every `intervalMs` until it is true; fails after `timeoutMs` naming `what`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000, intervalMs = 5): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
