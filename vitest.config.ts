import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Cluster and fault tests start real processes; two cores do not profit from running many at once.
    maxWorkers: 2,
    globalSetup: ['test/harness/global-setup.ts'],
    // Fixes fast-check's seed for every property without its own (test/harness/random.ts).
    setupFiles: ['test/harness/seed-setup.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'main', include: ['test/**/*.test.ts'], exclude: ['test/alone/**'], sequence: { groupOrder: 0 } },
      },
      // Tests that compare latencies within their own run: they run after all the others, one at a time,
      // so that no other test file competes with them for the two cores.
      {
        extends: true,
        test: {
          name: 'alone',
          include: ['test/alone/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          fileParallelism: false,
        },
      },
    ],
  },
});
