// Structured JSON logs. Every line carries the node id and role; tokens never reach a log line
// (redacted by path in case one slips into an object).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, base: Record<string, unknown>): Logger {
  return pino({
    level,
    base,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'jwt.secret'], censor: '***' },
  });
}
