/** How a run was made, for the report: the command line and the engine's settings. */
import { request } from '../lib/request';
import type { Options } from './options';
import type { Server } from './servers';

/** Engine settings recorded with the results when set in the environment. */
const ENGINE_ENV = ['HTTP_THREADS', 'WORKERS', 'MAX_BATCH_ROWS', 'MAX_QUEUE_DELAY_US', 'MAX_QUEUE_ROWS', 'MAX_REQUEST_ROWS', 'ORT_THREADS', 'REQUEST_TIMEOUT_MS', 'MAX_BODY_BYTES', 'UV_THREADPOOL_SIZE'];

function engineEnv(): string[] {
  return ENGINE_ENV.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map((k) => `${k}=${process.env[k]}`);
}

/** The command as it can be run again: engine settings from the environment, then the flags, quoted for a shell. */
export function commandLine(argv: string[]): string {
  const args = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const base = process.env.npm_lifecycle_event === 'bench:http' ? `npm run bench:http${args ? ' -- ' + args : ''}` : `node dist/bench/http.js${args ? ' ' + args : ''}`;
  return [...engineEnv(), base].join(' ');
}

/** What the engine was told (environment, --workers) and what it says it runs with. */
export async function engineConfigLine(engine: Server, o: Options): Promise<string> {
  const env = engineEnv();
  if (o.workers !== null) env.push(`WORKERS=${o.workers} (--workers)`);
  const parts = [env.length ? `environment ${env.join(', ')}` : 'defaults (no engine settings in the environment)'];
  try {
    const a = await request(engine.port, 'GET', '/monitoring/system/info', undefined, {}, 2000);
    if (a.status === 200) {
      const cfg = (JSON.parse(a.body.toString('utf8')) as { config?: Record<string, unknown> }).config ?? {};
      const keys = ['HTTP_THREADS', 'WORKERS', 'MAX_BATCH_ROWS', 'MAX_QUEUE_DELAY_US', 'MAX_QUEUE_ROWS', 'ORT_THREADS'];
      const shown = keys.filter((k) => k in cfg).map((k) => `${k}=${String(cfg[k])}`);
      if (shown.length) parts.push(`reported by /monitoring/system/info: ${shown.join(', ')}`);
    }
  } catch {
    /* not available: the environment is all the report can say */
  }
  return parts.join('; ');
}
