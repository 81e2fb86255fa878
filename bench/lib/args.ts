/**
 * Flags of the bench scripts, declared once as a list that is both the parseArgs configuration
 * and the --help text. Unknown flags are an error, so a typo never silently runs the default
 * benchmark.
 */
import { parseFlags, UsageError } from '../../src/cli/flags';

export { UsageError };

export interface FlagSpec {
  /** Flag name without the leading dashes. */
  name: string;
  /** A switch takes no value. */
  switch?: boolean;
  help: string;
}

/** Flag name → value ("true" for a switch), for the flags given. */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): Map<string, string> {
  const options = Object.fromEntries(specs.map((s) => [s.name, { type: s.switch ? ('boolean' as const) : ('string' as const) }]));
  const { values } = parseFlags({ args: argv, options });
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(values)) {
    if (value === '') throw new UsageError(`--${name} needs a value`);
    out.set(name, String(value));
  }
  return out;
}

export function usage(specs: readonly FlagSpec[]): string {
  const width = Math.max(...specs.map((s) => s.name.length + (s.switch ? 0 : 6))) + 4;
  return specs.map((s) => `  ${(`--${s.name}` + (s.switch ? '' : ' <v>')).padEnd(width)}${s.help}`).join('\n');
}

export function numberFlag(flags: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
  return n;
}

const HELP: FlagSpec = { name: 'help', switch: true, help: 'show this help' };

/** `specs` with a --help switch, unless they declare one. */
export function withHelp(specs: readonly FlagSpec[]): FlagSpec[] {
  return specs.some((s) => s.name === 'help') ? [...specs] : [...specs, HELP];
}

/**
 * The flags of a script run as a program, read by `read`: --help prints `usageHead` and the flags
 * and exits 0; a bad flag or value (a UsageError, from parsing or from `read`) prints the message
 * and the flags and exits 2.
 */
export function programFlags<T>(program: string, usageHead: string, specs: readonly FlagSpec[], read: (flags: Map<string, string>) => T): T {
  const all = withHelp(specs);
  try {
    const flags = parseArgs(process.argv.slice(2), all);
    if (flags.has('help')) {
      process.stdout.write(`${usageHead}\n\n${usage(all)}\n`);
      process.exit(0);
    }
    return read(flags);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${program}: ${err.message}\n\n${usage(all)}\n`);
    process.exit(2);
  }
}
