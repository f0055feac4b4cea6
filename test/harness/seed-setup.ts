// Vitest setup file: fast-check properties run with `TEST_SEED` unless they give their own seed, so
// every property test draws the same cases on every run (see random.ts for exploring other seeds).
import fc from 'fast-check';
import { TEST_SEED } from './random.js';

fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: TEST_SEED });
