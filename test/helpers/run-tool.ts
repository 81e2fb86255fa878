/**
 * Running a command-line tool (promtool, amtool) to completion and reading what it said. The
 * tools themselves are found by ./requirements (requireTool).
 */
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from './monitoring-files';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool (bounded by `timeoutMs`) without throwing on a non-zero exit; cwd is the repository. */
export function runTool(file: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): RunResult {
  try {
    const stdout = execFileSync(file, args, {
      cwd: options.cwd ?? REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 60_000,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: e.status ?? -1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + (e.status == null ? e.message : '') };
  }
}

/** The first line a tool prints for --version, e.g. "promtool, version 2.42.0+ds (...)". */
export function toolVersion(file: string): string {
  const out = execFileSync(file, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n')[0]!.trim();
}
