// The build's second half, after `tsc`: copies what compiled code reads at run time (the Lua scripts,
// the demo page) into dist/, and bundles the client SDK for browsers into dist/sdk/rtgw.js (one ES
// module, no dependencies; served at /sdk/rtgw.js in development mode).
import { cpSync } from 'node:fs';
import { build } from 'esbuild';

cpSync('shared/redis/lua', 'dist/shared/redis/lua', { recursive: true });
cpSync('client/demo', 'dist/demo', { recursive: true });
await build({
  entryPoints: ['client/index.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  platform: 'browser',
  sourcemap: true,
  outfile: 'dist/sdk/rtgw.js',
  logLevel: 'warning',
});
