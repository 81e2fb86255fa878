/**
 * A tiny `--flag value` / `--flag=value` / `--switch` parser for the bench scripts. Unknown flags
 * are an error, so a typo never silently runs the default benchmark.
 */

export interface FlagSpec {
  /** Flag name without the leading dashes. */
  name: string;
  /** A switch takes no value. */
  switch?: boolean;
  help: string;
}

export class ArgError extends Error {}

export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ArgError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new ArgError(`unknown flag "--${name}"`);
    if (spec.switch) {
      if (eq !== -1) throw new ArgError(`--${name} takes no value`);
      out.set(name, 'true');
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined || value === '') throw new ArgError(`--${name} needs a value`);
    out.set(name, value);
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
  if (!Number.isFinite(n) || n < min || n > max) throw new ArgError(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
  return n;
}
