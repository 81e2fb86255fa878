/**
 * What a test needs from the machine (a program, a Python module, a data file) and the one rule
 * for when it is missing:
 *
 * - under CI (`CI` set, as `.ci/run`'s callers run it) the test FAILS, with a message naming what
 *   is missing and how to install or provide it: CI must never pass by not testing;
 * - elsewhere the test is reported SKIPPED by vitest (and a warning says why), never passed.
 *
 * Use:
 *
 *     const promtool = requireTool('promtool');
 *     it.skipIf(promtool.skip)('...', () => {
 *       const bin = promtool.get(); // throws under CI when missing
 *     });
 *
 * or, inside a test, `const file = elec2.get(ctx)` (skips through the test context outside CI).
 * `skip` is true only outside CI, so under CI the test runs and `get()` throws.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../../src/paths';

/** True under CI, where nothing may be skipped for want of a tool or data. */
export const IN_CI = ((v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false')(process.env.CI);

/** The repository root (the folder holding package.json). */
export const REPO_ROOT = projectRoot();

/** The part of vitest's test context that skips the running test. */
interface SkipContext {
  skip(note?: string): never;
}

export class Requirement {
  private warned = false;

  constructor(
    /** What is needed, e.g. "promtool". */
    readonly what: string,
    /** How to get it, e.g. "apt-get install -y prometheus". */
    readonly remedy: string,
    /** The program's or file's path; null when missing. */
    readonly value: string | null,
  ) {}

  get missing(): boolean {
    return this.value === null;
  }

  get message(): string {
    return `${this.what} is missing: ${this.remedy}`;
  }

  /**
   * For `it.skipIf(r.skip)` / `describe.skipIf(r.skip)`: true when missing outside CI (with a
   * warning), false under CI so the test runs and `get()` fails it.
   */
  get skip(): boolean {
    if (!this.missing || IN_CI) return false;
    this.warn();
    return true;
  }

  /**
   * The path. Missing: under CI throws; elsewhere skips through `ctx` when given (and throws
   * without one, for code that should have been guarded by `skip`).
   */
  get(ctx?: SkipContext): string {
    if (this.value !== null) return this.value;
    if (IN_CI) throw new Error(`CI is set and ${this.message}`);
    if (ctx) {
      this.warn();
      ctx.skip(this.message);
    }
    throw new Error(`${this.message} (guard the test with skipIf(requirement.skip))`);
  }

  private warn(): void {
    if (this.warned) return;
    this.warned = true;
    console.warn(`SKIPPING (not under CI): ${this.message}`);
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The programs tests run, the names they go by and the Debian package that has them. */
const TOOLS = {
  promtool: { names: ['promtool'], debian: 'prometheus' },
  prometheus: { names: ['prometheus'], debian: 'prometheus' },
  amtool: { names: ['amtool'], debian: 'prometheus-alertmanager' },
  // Debian installs the Alertmanager daemon as prometheus-alertmanager.
  alertmanager: { names: ['prometheus-alertmanager', 'alertmanager'], debian: 'prometheus-alertmanager' },
  python3: { names: ['python3'], debian: 'python3' },
  ip: { names: ['ip'], debian: 'iproute2' },
  'redis-server': { names: ['redis-server'], debian: 'redis-server' },
} as const;

export type ToolName = keyof typeof TOOLS;

const memo = new Map<string, Requirement>();
function memoized(key: string, make: () => Requirement): Requirement {
  let r = memo.get(key);
  if (!r) memo.set(key, (r = make()));
  return r;
}

/** A program, looked up in /usr/bin (Debian's) first, then along PATH. */
export function requireTool(tool: ToolName): Requirement {
  return memoized(`tool:${tool}`, () => {
    const { names, debian } = TOOLS[tool];
    const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
    let found: string | null = null;
    for (const name of names) {
      for (const dir of dirs) {
        const file = path.join(dir, name);
        if (!found && isExecutable(file)) found = file;
      }
    }
    return new Requirement(names.join(' / '), `install Debian's ${debian} (apt-get install -y ${debian})`, found);
  });
}

/**
 * Debian's /usr/bin/python3 able to import `modules` (a pyenv `python3` on PATH may lack them);
 * the value is that interpreter. `debianPackages` say how to install the modules.
 */
export function requirePython(modules: string[], debianPackages: string[]): Requirement {
  return memoized(`python:${modules.join(',')}`, () => {
    const python = '/usr/bin/python3';
    const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' });
    const ok = probe.status === 0;
    const list = debianPackages.join(' ');
    return new Requirement(`${python} with ${modules.join(', ')}`, `install Debian's ${list} (apt-get install -y ${list})`, ok ? python : null);
  });
}

/** The onnx and numpy modules of Debian's python3: models made by another tool than ours. */
export function requirePythonOnnx(): Requirement {
  return requirePython(['onnx', 'numpy'], ['python3-onnx', 'python3-numpy']);
}

/** A file a test reads; `remedy` says where it comes from, `what` names it in messages. */
export function requireData(file: string, remedy: string, what = file): Requirement {
  return memoized(`data:${file}`, () => new Requirement(what, remedy, existsSync(file) ? file : null));
}

/**
 * Where the Elec2 data set is: $ELEC2_CSV when set, else ../shared/data/elec2.csv next to the
 * repository (never part of it).
 */
export function elec2Path(): string {
  const override = process.env.ELEC2_CSV;
  return override !== undefined && override !== '' ? path.resolve(override) : path.join(REPO_ROOT, '..', 'shared', 'data', 'elec2.csv');
}

/** The Elec2 data set (see elec2Path). */
export function requireElec2(): Requirement {
  const file = elec2Path();
  return requireData(file, `put the Elec2 CSV at ${path.join(REPO_ROOT, '..', 'shared', 'data', 'elec2.csv')} or point ELEC2_CSV at it`, `the Elec2 data set (${file})`);
}

/** A file of the build (dist/), which `npm test` makes before running vitest. */
export function requireBuilt(relative: string): Requirement {
  const file = path.join(REPO_ROOT, 'dist', relative);
  return requireData(file, 'build first (npm run build; npm test builds before it runs vitest)', `the build's ${relative}`);
}

/**
 * Network namespaces the test makes itself (root and iproute2's `ip netns`), for a client that
 * reaches the engine from an address other than loopback without any traffic leaving the machine.
 */
export function requireNetns(): Requirement {
  return memoized('netns', () => {
    const ip = requireTool('ip');
    const name = `tf-probe-${process.pid}`;
    const ok = ip.value !== null && spawnSync(ip.value, ['netns', 'add', name]).status === 0;
    if (ok) spawnSync(ip.value!, ['netns', 'del', name]);
    return new Requirement('network namespaces (ip netns add, as root)', 'run as root with Debian\'s iproute2 (apt-get install -y iproute2)', ok ? ip.value : null);
  });
}
