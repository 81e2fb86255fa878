/**
 * `tradeflow drift replay`: runs one drift detector over a history of values (one number per
 * line) and prints a JSON line for every step spent in warning or drift, so users can tune a
 * detector's parameters on their own history before configuring the engine with them.
 * Streams and exit codes are parameters so tests can run it in-process.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { createDetector, DETECTOR_TYPES, DETECTORS } from '../drift/registry';
import type { DriftDetector, ParamValue } from '../drift/detector';
import type { ParamSpec } from '../drift/params';
import { isTradeflowError } from '../errors';
import { parseFlags, UsageError } from './flags';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function paramDefault(s: ParamSpec): string {
  if (s.default === null) return 'unset';
  return typeof s.default === 'string' ? s.default : String(s.default);
}

export function replayUsage(): string {
  const lines = [
    'Usage: tradeflow drift replay --detector NAME [--param name=value ...] [--input FILE]',
    '',
    'Reads one number per line (standard input, or FILE) and feeds each to the detector.',
    'Prints one JSON line for every step at which the detector is in warning or drift:',
    '  {"index": 1023, "state": "drift"}',
    'index is the 0-based line number. Binary detectors expect error bits (1 = error).',
    'Detectors behave as River\'s river.drift classes with the same parameters.',
    '',
    'Options:',
    '  --detector NAME      one of ' + DETECTOR_TYPES.join(', '),
    '  --param name=value   override a parameter (repeatable)',
    '  --input FILE         read FILE instead of standard input ("-" is standard input)',
    '  --help               show this help',
    '',
    'Detectors and parameters (defaults are River\'s):',
  ];
  for (const t of DETECTOR_TYPES) {
    const info = DETECTORS[t];
    lines.push(`  ${t} (${info.input === 'binary' ? 'error bits' : 'real values'}${info.warnings ? ', warnings' : ''}; ${info.river})`);
    for (const [name, s] of Object.entries(info.spec.params as Record<string, ParamSpec>)) {
      lines.push(`    ${(name + '=' + paramDefault(s)).padEnd(26)} ${s.doc}`);
    }
  }
  lines.push('', 'Exit status: 0 done, 2 unknown detector, unknown or bad parameter, or a line that is not a number.');
  return lines.join('\n') + '\n';
}

interface ReplayArgs {
  detector: string;
  params: Record<string, ParamValue>;
  input: string | null;
}

const REPLAY_FLAGS = {
  detector: { type: 'string' },
  param: { type: 'string', multiple: true },
  input: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseReplayArgs(argv: string[]): ReplayArgs | 'help' {
  const { values } = parseFlags({ args: argv, options: REPLAY_FLAGS });
  if (values.help) return 'help';
  const params: Record<string, ParamValue> = {};
  for (const kv of values.param ?? []) {
    const k = kv.indexOf('=');
    if (k <= 0) throw new UsageError(`--param expects name=value, got "${kv}"`);
    const name = kv.slice(0, k);
    if (name in params) throw new UsageError(`parameter ${name} given twice`);
    params[name] = kv.slice(k + 1);
  }
  if (values.detector === undefined) throw new UsageError(`--detector is required (one of ${DETECTOR_TYPES.join(', ')})`);
  return { detector: values.detector, params, input: values.input ?? null };
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Collects output and respects the destination's backpressure. */
class Output {
  private chunks: string[] = [];
  private size = 0;
  failed: Error | null = null;

  constructor(private readonly out: NodeJS.WritableStream) {
    out.on('error', (err: Error) => {
      this.failed = err;
    });
  }

  async write(s: string): Promise<void> {
    this.chunks.push(s);
    this.size += s.length;
    if (this.size >= 1 << 16) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.chunks.length === 0 || this.failed) return;
    const data = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    if (!this.out.write(data)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.out.off('drain', done);
          this.out.off('error', done);
          this.out.off('close', done);
          resolve();
        };
        this.out.on('drain', done);
        this.out.on('error', done);
        this.out.on('close', done);
      });
    }
  }
}

type Fail = (code: number, msg: string) => number;

interface Input {
  source: NodeJS.ReadableStream;
  /** Our own stream, to destroy when done; null for standard input. */
  file: fs.ReadStream | null;
  name: string;
}

/** The input stream, or the message saying why it cannot be read. */
function openInput(input: string | null, stdin: NodeJS.ReadableStream): Input | string {
  if (input === null || input === '-') return { source: stdin, file: null, name: 'standard input' };
  try {
    // Opened up front so a missing file is reported before any output.
    const fd = fs.openSync(input, 'r');
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      return `cannot read ${input}: it is a directory`;
    }
    const file = fs.createReadStream(input, { fd });
    return { source: file, file, name: input };
  } catch (err) {
    return `cannot read ${input}: ${(err as Error).message}`;
  }
}

/** The message for a line that is not a finite number, or null for one that is. */
function badLine(text: string, lineNo: number): string | null {
  if (!NUMBER_RE.test(text)) {
    const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
    return text === '' ? `line ${lineNo} is empty, expected a number` : `line ${lineNo} is not a number: "${shown}"`;
  }
  return Number.isFinite(Number(text)) ? null : `line ${lineNo} is out of range: "${text}"`;
}

/** Feeds every line to the detector, writing the non-stable steps; answers the exit code. */
async function replayLines(detector: DriftDetector, input: Input, out: Output, fail: Fail): Promise<number> {
  const rl = readline.createInterface({ input: input.source, crlfDelay: Infinity, terminal: false });
  let index = 0;
  try {
    for await (const raw of rl) {
      const text = raw.trim();
      const bad = badLine(text, index + 1);
      if (bad !== null) return fail(EXIT_USAGE, bad);
      const state = detector.update(Number(text));
      if (state !== 'stable') await out.write(`{"index": ${index}, "state": "${state}"}\n`);
      if (out.failed) break;
      index++;
    }
    return EXIT_OK;
  } catch (err) {
    return fail(EXIT_FAILED, `cannot read ${input.name}: ${(err as Error).message}`);
  } finally {
    rl.close();
    input.file?.destroy();
  }
}

/** The detector, or the exit code after saying why the command line does not name one. */
function detectorFromArgs(argv: string[], stdout: NodeJS.WritableStream, fail: Fail): { detector: DriftDetector; input: string | null } | number {
  let args: ReplayArgs | 'help';
  try {
    args = parseReplayArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return fail(EXIT_USAGE, `${err.message}\nRun "tradeflow drift replay --help" for usage.`);
    throw err;
  }
  if (args === 'help') {
    stdout.write(replayUsage());
    return EXIT_OK;
  }
  try {
    return { detector: createDetector(args.detector, args.params), input: args.input };
  } catch (err) {
    if (isTradeflowError(err)) return fail(EXIT_USAGE, err.message);
    throw err;
  }
}

/**
 * `tradeflow drift replay [options]`; `argv` holds the options after `replay`.
 * Answers the exit code.
 */
export async function driftReplay(
  argv: string[],
  stdin: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): Promise<number> {
  const fail: Fail = (code, msg) => {
    stderr.write(`tradeflow drift replay: ${msg}\n`);
    return code;
  };
  const chosen = detectorFromArgs(argv, stdout, fail);
  if (typeof chosen === 'number') return chosen;
  const input = openInput(chosen.input, stdin);
  if (typeof input === 'string') return fail(EXIT_USAGE, input);
  const out = new Output(stdout);
  const code = await replayLines(chosen.detector, input, out, fail);
  await out.flush();
  if (out.failed) {
    // A reader that went away (`| head`) is not an error of ours.
    return (out.failed as NodeJS.ErrnoException).code === 'EPIPE' ? code : fail(EXIT_FAILED, `cannot write: ${out.failed.message}`);
  }
  return code;
}

export const DRIFT_USAGE = `Usage: tradeflow drift <command> [options]

Commands:
  replay       run a drift detector over a history of values (one per line)

Run "tradeflow drift replay --help" for its options.
`;

/** `tradeflow drift ...`: `argv` holds the arguments after `drift`. Answers the exit code. */
export async function driftCommand(
  argv: string[],
  stdin: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'replay') return driftReplay(rest, stdin, stdout, stderr);
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? stderr : stdout).write(DRIFT_USAGE);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  stderr.write(`tradeflow drift: unknown command "${sub}"\n${DRIFT_USAGE}`);
  return EXIT_USAGE;
}

if (require.main === module) {
  driftCommand(process.argv.slice(2), process.stdin, process.stdout, process.stderr).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`tradeflow drift: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
