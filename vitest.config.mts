import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The chaos suite has its own command (npm run test:chaos, vitest.chaos.config.mts).
    exclude: ['test/chaos/**', '**/node_modules/**'],
    // Servers, worker threads and onnxruntime sessions are real: run files one at a time so
    // two suites never fight over the machine's 2 cores, and give real start-ups room.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
