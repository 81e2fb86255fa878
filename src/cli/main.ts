#!/usr/bin/env node
/** The `tradeflow` command. `serve` is what `npm start` runs. */
import { startEngine } from '../app';
import { configHelp, loadConfig } from '../config';
import { TradeflowError } from '../errors';
import { createLogger } from '../telemetry/logger';
import { driftCommand } from './drift-replay';
import { evalCommand } from './eval';
import { loadCommand } from './load';
import { trainCommand } from './train';

const USAGE = `Usage: tradeflow <command> [options]

Commands:
  serve        start the inference engine (HTTP API on PORT, default 8000)
  eval         prequential evaluation of a running engine on a labelled CSV
  train        train an ensemble from a labelled CSV and write it as ONNX with its model card
  drift        drift detector tools (drift replay: run a detector over a history)
  load         load test at a constant rate: latency as clients see it, the engine's histogram beside it, an alert check

Run "tradeflow <command> --help" for a command's options.`;

const SERVE_USAGE = `Usage: tradeflow serve [options]

Starts the engine on the configured model. Every option is also read from its
environment variable; a flag wins over the variable.

Options:
${configHelp()}
  --help                     show this help`;

const EXIT_NOT_DRAINED = 3;

async function serve(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(SERVE_USAGE + '\n');
    return;
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    process.stderr.write(`tradeflow: invalid configuration: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  let engine;
  try {
    engine = await startEngine(config, logger);
  } catch (err) {
    const msg = err instanceof TradeflowError ? `${err.code}: ${err.message}` : (err as Error).stack ?? String(err);
    logger.fatal({ err: msg }, 'engine failed to start');
    process.stderr.write(`tradeflow: engine failed to start: ${msg}\n`);
    // A setting that only shows itself wrong against the model or the state (FEATURES against the
    // model, a checkpoint of another shape) is a bad setting too: the same exit code as the rest.
    process.exit(err instanceof TradeflowError && err.code === 'CONFIG_INVALID' ? 2 : 1);
  }
  try {
    await engine.ready();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'workers failed to start');
    process.stderr.write(`tradeflow: workers failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    // 0: every queued and in-flight request was answered; 3: the shutdown bound came first.
    engine.shutdown(signal).then(
      ({ drained }) => process.exit(drained ? 0 : EXIT_NOT_DRAINED),
      (err: Error) => {
        logger.error({ err: err.message }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Test hook (src/pool/testing-hooks.ts): a test driving this process from outside lets a held
  // batch go with SIGUSR2, as an in-process test calls engine.testHooks.release().
  const hooks = engine.testHooks;
  if (hooks.worker.holdOnFeature !== null) process.on('SIGUSR2', () => hooks.release());
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'eval':
      process.exitCode = await evalCommand(rest, process.stdout, process.stderr);
      return;
    case 'train':
      process.exitCode = await trainCommand(rest, process.stdout, process.stderr);
      return;
    case 'drift':
      process.exitCode = await driftCommand(rest, process.stdin, process.stdout, process.stderr);
      return;
    case 'load':
      process.exitCode = await loadCommand(rest, process.stdout, process.stderr);
      return;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE + '\n');
      if (command === undefined) process.exitCode = 2;
      return;
    default:
      process.stderr.write(`tradeflow: unknown command "${command}"\n\n${USAGE}\n`);
      process.exit(2);
  }
}

void main();
