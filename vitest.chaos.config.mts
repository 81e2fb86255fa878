import { defineConfig } from 'vitest/config';

/**
 * The chaos suite (issue 12): fuzzed and malformed requests, slow clients, overload, disk and
 * worker faults against a real engine. Longer than the unit suite, bounded in count and time:
 * the whole suite stays under 10 minutes on this 2-core machine.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
