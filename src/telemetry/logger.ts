/** Structured logs: one JSON line per event on stdout. */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'tradeflow', pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
