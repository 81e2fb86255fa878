/**
 * A real redis-server for the replica tests: Debian's package, started on a free port with the
 * durability the README promises (`appendonly yes`, `appendfsync always`) in a fresh directory,
 * stopped (or killed, to test a crash) by the test. `requireRedis()` declares the need: under
 * CI a missing redis-server fails the test, elsewhere it is skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createClient } from 'redis';
import { freePort, startChild, stopChild, waitFor, type Child } from '../../bench/lib/procs';
import { requireTool, type Requirement } from './requirements';

export function requireRedis(): Requirement {
  return requireTool('redis-server');
}

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  child: Child;
  /** Stops it (SIGTERM; `kill -9` with `crash`); the data directory is kept for a restart. */
  stop(crash?: boolean): Promise<void>;
  /** Starts it again on the same port and directory (its AOF is read back). */
  restart(): Promise<void>;
  /** Sends one command on a short-lived connection (for checks). */
  command(args: string[]): Promise<unknown>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

export async function startRedis(binary: string): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'tradeflow-redis-'));
  let child = await launch(binary, port, dir);
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get child() {
      return child;
    },
    async stop(crash = false) {
      if (crash) {
        child.proc.kill('SIGKILL');
        await child.exitPromise;
      } else {
        await stopChild(child, 5000);
      }
    },
    async restart() {
      child = await launch(binary, port, dir);
    },
    command: (args) => oneCommand(port, args),
    async destroy() {
      if (!child.exited) await stopChild(child, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

async function launch(binary: string, port: number, dir: string): Promise<Child> {
  const child = startChild(`redis-${port}`, binary, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], {
    logPath: path.join(dir, 'redis.log'),
  });
  await waitFor(
    async () => {
      if (child.exited) throw new Error(`redis-server exited (code ${child.exitCode})`);
      try {
        return (await oneCommand(port, ['PING'])) === 'PONG';
      } catch {
        return false;
      }
    },
    `redis-server on port ${port}`,
    20_000,
    20,
  );
  return child;
}

async function oneCommand(port: number, args: string[]): Promise<unknown> {
  const c = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false, connectTimeout: 1000 } });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await c.sendCommand(args);
  } finally {
    c.destroy();
  }
}
