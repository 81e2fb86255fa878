/**
 * The exit-code contract of the offline commands (`tradeflow eval`, `tradeflow train`): --help
 * prints the usage and answers 0, a bad command line prints why and answers 2, a run that fails
 * prints why and answers 1. Streams are parameters so tests run commands in-process.
 */

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export async function runCommand<A>(name: string, usage: string, argv: string[], io: CommandIo, parse: (argv: string[]) => A, run: (args: A) => Promise<string>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(usage + '\n');
    return 0;
  }
  let args: A;
  try {
    args = parse(argv);
  } catch (err) {
    io.stderr.write(`${name}: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    io.stdout.write((await run(args)) + '\n');
    return 0;
  } catch (err) {
    io.stderr.write(`${name}: ${(err as Error).message}\n`);
    return 1;
  }
}
