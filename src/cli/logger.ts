import pino from 'pino';
import type { Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/** Logs go to stderr, synchronously: JSON, or human-readable on a TTY or with --log-format pretty. */
export function createLogger(format: LogFormat | undefined, level: string): Logger {
  const human = format === 'pretty' || (format === undefined && process.stderr.isTTY === true);
  // One line per event: the structured fields stay on the line, not in an indented block under it.
  if (human) return pino({ level }, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, singleLine: true, ignore: 'pid,hostname' }));
  return pino({ level }, pino.destination({ fd: 2, sync: true }));
}
