// Development mode only: the demo page at `/` and the client SDK's browser bundle at `/sdk/rtgw.js`, from
// the files `npm run build` put in dist/ (read once, at startup).
import { readFileSync } from 'node:fs';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from '../shared/log.js';

const FILES: [path: string, file: string, type: string][] = [
  ['/', 'demo/index.html', 'text/html; charset=utf-8'],
  ['/demo.js', 'demo/app.js', 'text/javascript; charset=utf-8'],
  ['/sdk/rtgw.js', 'sdk/rtgw.js', 'text/javascript; charset=utf-8'],
  ['/sdk/rtgw.js.map', 'sdk/rtgw.js.map', 'application/json'],
];

export function serveDemo(app: TemplatedApp, log: Logger): void {
  const dist = new URL('../', import.meta.url); // this file runs as dist/gateway/demo.js
  for (const [path, file, type] of FILES) {
    let body: Buffer;
    try {
      body = readFileSync(new URL(file, dist));
    } catch {
      log.warn({ file }, 'demo page not built (run `npm run build`); not serving it');
      return;
    }
    app.get(path, (res) => {
      res.writeHeader('content-type', type).writeHeader('cache-control', 'no-cache').end(body);
    });
  }
}
