/**
 * Real Prometheus and Alertmanager daemons for the monitoring tests, on ports from the OS with
 * their configuration and storage in a temporary folder, started and stopped through the process
 * helpers the benchmarks use (bench/lib/procs.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, startChild, stopChild, waitReady, type Child } from '../../bench/lib/procs';
import { requireTool } from './requirements';

export interface Daemon {
  url: string;
  port: number;
  /** Working directory (configs, storage); removed by stop(). */
  dir: string;
  child: Child;
  /** Everything the daemon printed so far (it logs to stderr). */
  logs(): string;
  stop(): Promise<void>;
}

async function startDaemon(name: string, binary: string, makeArgs: (port: number) => string[], dir: string, timeoutMs: number): Promise<Daemon> {
  let lastError: unknown;
  // The port is free when the OS hands it out; another process may take it before the daemon
  // binds it, so a daemon that exits at start is retried on a new port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = startChild(name, binary, makeArgs(port), { cwd: dir, capture: true });
    try {
      await waitReady(child, port, '/-/ready', timeoutMs);
      const stop = async (): Promise<void> => {
        await stopChild(child, 5000);
        rmSync(dir, { recursive: true, force: true });
      };
      return { url: `http://127.0.0.1:${port}`, port, dir, child, logs: child.output, stop };
    } catch (err) {
      lastError = err;
      await stopChild(child, 0);
      if (!/address already in use/i.test(child.output())) break;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

export interface PrometheusOptions {
  /** prometheus.yml text. Relative paths in it (rule_files) are relative to `files`' folder. */
  config: string;
  /** Further files written next to the config (name → content), e.g. a test copy of the rules. */
  files?: Record<string, string>;
  extraArgs?: string[];
  timeoutMs?: number;
}

export async function startPrometheus(options: PrometheusOptions): Promise<Daemon> {
  const binary = requireTool('prometheus').get();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tradeflow-prometheus-'));
  writeFileSync(path.join(dir, 'prometheus.yml'), options.config);
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(path.join(dir, name), content);
  const args = (port: number): string[] => [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-lifecycle',
    '--log.level=warn',
    ...(options.extraArgs ?? []),
  ];
  return startDaemon('prometheus', binary, args, dir, options.timeoutMs ?? 30_000);
}

export interface AlertmanagerOptions {
  /** Alertmanager config.yml text. */
  config: string;
  extraArgs?: string[];
  timeoutMs?: number;
}

/** Clustering off: a lone Alertmanager would otherwise wait for peers. */
export async function startAlertmanager(options: AlertmanagerOptions): Promise<Daemon> {
  const binary = requireTool('alertmanager').get();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tradeflow-alertmanager-'));
  writeFileSync(path.join(dir, 'config.yml'), options.config);
  const args = (port: number): string[] => [
    `--config.file=${path.join(dir, 'config.yml')}`,
    `--storage.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
    '--log.level=warn',
    ...(options.extraArgs ?? []),
  ];
  return startDaemon('alertmanager', binary, args, dir, options.timeoutMs ?? 30_000);
}
