// The gateway's plain HTTP routes beside the WebSocket endpoint: 426 for a GET of /ws without an upgrade,
// the development mode's token endpoint and demo page, and 404 for anything else.
import type { TemplatedApp } from 'uWebSockets.js';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import { ErrorCode } from '../shared/protocol/codes.js';
import { isUserId } from '../shared/protocol/names.js';
import { signDevToken } from './auth.js';
import { serveDemo } from './demo.js';

export function serveHttp(app: TemplatedApp, cfg: Config, log: Logger): void {
  app.get('/ws', (res) => {
    res.writeStatus('426 Upgrade Required').end('WebSocket endpoint: connect with an upgrade request');
  });
  if (cfg.devMode) {
    serveDemo(app, log);
    app.get('/dev/token', (res, req) => {
      const user = req.getQuery('user');
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      if (!isUserId(user)) {
        res
          .writeStatus('400 Bad Request')
          .writeHeader('content-type', 'application/json')
          .end(
            JSON.stringify({
              error: { code: ErrorCode.BadRequest, msg: 'user must be 1 to 128 characters of A-Z a-z 0-9 _ - : @ .' },
            }),
          );
        return;
      }
      void signDevToken(cfg.jwt.secret!, user).then((token) => {
        if (aborted) return;
        res.cork(() =>
          res
            .writeHeader('content-type', 'application/json')
            .writeHeader('cache-control', 'no-store')
            .end(JSON.stringify({ token })),
        );
      });
    });
  }
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').end('not found');
  });
}
