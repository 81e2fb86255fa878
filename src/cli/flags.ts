/**
 * Command-line flags for the commands, benchmarks and scripts: node:util's parseArgs in strict
 * mode, with messages that name the flag the way our commands always have ("--out needs a
 * value", "unknown option "--x""). parseArgs' own messages are prose that differs between Node
 * versions, so a failed strict parse is explained again from the tokens of a lenient one.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TradeflowError } from '../errors';

/** A bad command line: the caller prints the message and exits 2. */
export class UsageError extends TradeflowError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

type FlagOptions = NonNullable<ParseArgsConfig['options']>;

export interface FlagsConfig {
  args: readonly string[];
  options: FlagOptions;
  /** Only where the command takes operands; otherwise a stray word is an error. */
  allowPositionals?: boolean;
}

type Strict<T extends FlagsConfig> = Omit<T, 'args'> & { args: string[]; strict: true };

/** parseArgs with `strict: true`; throws UsageError naming the flag or argument at fault. */
export function parseFlags<const T extends FlagsConfig>(config: T): ReturnType<typeof parseArgs<Strict<T>>> {
  const strict = { ...config, args: [...config.args], strict: true } as Strict<T>;
  try {
    return parseArgs(strict);
  } catch (err) {
    throw new UsageError(explain(config) ?? (err as Error).message);
  }
}

function explain(config: FlagsConfig): string | null {
  const { tokens } = parseArgs({ args: [...config.args], options: config.options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (!config.allowPositionals) return `unexpected argument "${t.value}"`;
      continue;
    }
    if (t.kind !== 'option') continue;
    const spec = config.options[t.name];
    if (!spec) return `unknown option "${t.rawName}"`;
    if (spec.type === 'boolean' && t.value !== undefined) return `${t.rawName} takes no value`;
    if (spec.type === 'string' && t.value === undefined) return `${t.rawName} needs a value`;
    // Strict mode reads "--out --seed" as a forgotten value, not as the value "--seed".
    if (spec.type === 'string' && !t.inlineValue && t.value!.length > 1 && t.value!.startsWith('-')) {
      return `${t.rawName} needs a value (a value that starts with "-" is written ${t.rawName}=${t.value})`;
    }
  }
  return null;
}

/** A whole number in [min, max] (decimal digits only: "1e3", "0x10" and "2.0" are refused). */
export function wholeNumber(flag: string, raw: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`${flag} must be a whole number ${range}, got "${raw}"`);
  }
  return n;
}

/** "a, b,,c" → ["a", "b", "c"]. */
export function listFlag(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
