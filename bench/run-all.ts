/**
 * Runs every micro benchmark in bench/: each `bench/<name>.bench.ts` that exports
 * `async function run()`. `npm run bench` runs them all; `npm run bench -- json-body` runs the
 * ones whose name contains "json-body". Each module is also runnable on its own
 * (`node dist/bench/<name>.bench.js`). A module that fails to load or throws is reported and the
 * others still run; the exit code is 1 if any failed. The end-to-end HTTP benchmark is separate:
 * `npm run bench:http`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseFlags, UsageError } from '../src/cli/flags';

const SUFFIX = '.bench.js';

/** Built modules next to this file; when the sources are there, only those with a source file. */
function discover(dir: string): string[] {
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(SUFFIX));
  } catch {
    return [];
  }
  const sourceDir = path.resolve(dir, '..', '..', 'bench');
  if (fs.existsSync(sourceDir) && path.resolve(sourceDir) !== path.resolve(dir)) {
    // A module whose source was deleted leaves a stale .js in dist/: skip it.
    files = files.filter((f) => fs.existsSync(path.join(sourceDir, f.slice(0, -SUFFIX.length) + '.bench.ts')));
  }
  return files.sort();
}

const USAGE = 'Usage: npm run bench -- [name ...]\nRuns every bench/*.bench.ts module that exports run(); names filter by substring.\n';

async function main(): Promise<number> {
  let filters: string[];
  try {
    const { values, positionals } = parseFlags({ args: process.argv.slice(2), options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    filters = positionals;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n${USAGE}`);
    return 2;
  }
  const files = discover(__dirname).filter((f) => filters.length === 0 || filters.some((n) => f.includes(n)));
  if (files.length === 0) {
    process.stdout.write(filters.length ? `no benchmark module matches ${filters.join(', ')}\n` : 'no benchmark modules (bench/*.bench.ts exporting run()) found\n');
    return filters.length ? 1 : 0;
  }
  const failed: string[] = [];
  const skipped: string[] = [];
  for (const file of files) {
    const name = file.slice(0, -SUFFIX.length);
    let mod: { run?: unknown };
    try {
      mod = require(path.join(__dirname, file)) as { run?: unknown };
    } catch (err) {
      process.stderr.write(`\n## ${name}: could not load: ${(err as Error).stack ?? String(err)}\n`);
      failed.push(name);
      continue;
    }
    if (typeof mod.run !== 'function') {
      process.stdout.write(`\n## ${name}: no exported run(), skipped\n`);
      skipped.push(name);
      continue;
    }
    process.stdout.write(`\n## ${name}\n\n`);
    const t0 = Date.now();
    try {
      const out: unknown = await (mod.run as () => unknown)();
      if (typeof out === 'string' && out.length > 0) process.stdout.write(out.endsWith('\n') ? out : out + '\n');
      process.stdout.write(`(${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    } catch (err) {
      process.stderr.write(`## ${name} failed: ${(err as Error).stack ?? String(err)}\n`);
      failed.push(name);
    }
  }
  process.stdout.write(`\nbench: ${files.length - failed.length - skipped.length} ran, ${skipped.length} skipped, ${failed.length} failed${failed.length ? ` (${failed.join(', ')})` : ''}\n`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
