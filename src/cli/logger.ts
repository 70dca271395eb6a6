import pino from 'pino';
import type { Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';

/** Logs go to stderr: JSON, or human-readable on a TTY or with --log-format pretty. */
export function createLogger(format: LogFormat | undefined, level: string): Logger {
  const pretty = format === 'pretty' || (format === undefined && process.stderr.isTTY === true);
  if (pretty) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: process.stderr.isTTY === true } }));
  }
  return pino({ level }, pino.destination({ fd: 2, sync: true }));
}
