// Admin HTTP endpoints for every role: /healthz (alive, event loop responsive), /readyz (every
// dependency connected and not draining; 503 with the reasons otherwise), /metrics (Prometheus).
import { createServer, type Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Metrics } from './metrics.js';

/** A named readiness check: undefined when fine, otherwise why not. */
export type ReadyCheck = () => string | undefined;

export interface Admin {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_LOOP_DELAY_MS = 5000;

export async function startAdmin(host: string, port: number, metrics: Metrics, checks: ReadyCheck[]): Promise<Admin> {
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res
        .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    if (path === '/healthz') {
      const lagMs = loop.max / 1e6;
      loop.reset();
      return json(lagMs < MAX_LOOP_DELAY_MS ? 200 : 503, {
        ok: lagMs < MAX_LOOP_DELAY_MS,
        eventLoopMaxDelayMs: Math.round(lagMs),
      });
    }
    if (path === '/readyz') {
      const reasons = checks.map((c) => c()).filter((r): r is string => r !== undefined);
      return json(reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => json(500, { error: 'metrics unavailable' }),
      );
      return;
    }
    json(404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        loop.disable();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
