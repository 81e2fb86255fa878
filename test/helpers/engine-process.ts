/**
 * The engine as a process of its own (the `tradeflow serve` CLI from dist/), for tests that kill
 * it with SIGKILL and start it again on the same STATE_DIR.
 */
import * as path from 'node:path';
import { startChild, type Child } from '../../bench/lib/procs';
import { waitFor } from './engine';

const CLI = path.join(__dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

/**
 * Starts `tradeflow serve` on a free loopback port with `env` over the defaults below, adds it to
 * `children` (the caller stops them in afterEach), and resolves once every worker is warm.
 */
export async function serveProcess(children: Child[], env: Record<string, string>): Promise<{ child: Child; port: number }> {
  const child = startChild('engine', process.execPath, [CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    capture: true,
  });
  children.push(child);
  await waitFor(() => /"msg":"ready: every worker is warm"/.test(child.output()) || child.exited, 'the engine to be ready', 30_000);
  const m = /"port":(\d+),"config"/.exec(child.output());
  if (!m || child.exited) throw new Error('engine did not start: ' + child.output());
  return { child, port: Number(m[1]) };
}
