import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Cluster and fault tests start real processes; two cores do not profit from running many at once.
    maxWorkers: 2,
    globalSetup: ['test/harness/global-setup.ts'],
  },
});
