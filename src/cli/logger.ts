import { createRequire } from 'node:module';
import pino from 'pino';
import type { Logger } from 'pino';
import type pinoPretty from 'pino-pretty';

// pino-pretty (some forty modules) is loaded only for human-readable logs: a scheduled run logs
// JSON and starts without it.
const load = createRequire(import.meta.url);

export type LogFormat = 'json' | 'pretty';

/** Logs go to stderr, synchronously: JSON, or human-readable on a TTY or with --log-format pretty. */
export function createLogger(format: LogFormat | undefined, level: string): Logger {
  const human = format === 'pretty' || (format === undefined && process.stderr.isTTY === true);
  // One line per event: the structured fields stay on the line, not in an indented block under it.
  if (human) return pino({ level }, (load('pino-pretty') as typeof pinoPretty)({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, singleLine: true, ignore: 'pid,hostname' }));
  return pino({ level }, pino.destination({ fd: 2, sync: true }));
}
