/**
 * The controller's logger: one JSON object per line (`time`, `level`, `msg`, then fields), on
 * stderr by default. Callers pass only names, ids, counts and reasons — never a value, a key or a
 * raw API response body — and `error()` below turns an exception into a safe one-liner. Credentials
 * in any URL that reaches a line are scrubbed (scrubUrls).
 */

import {scrubUrls} from '../core/errors.js'

export type Level = 'debug' | 'info' | 'warn' | 'error'
const RANK: Record<Level, number> = {debug: 10, info: 20, warn: 30, error: 40}
export const LEVELS = Object.keys(RANK) as Level[]

export type Fields = Record<string, string | number | boolean | null | undefined | string[]>

export interface Logger {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
  /** A logger that adds these fields to every line. */
  with(fields: Fields): Logger
}

export interface LoggerOptions {
  level?: Level
  write?: (line: string) => void
  now?: () => Date
}

export function createLogger(opts: LoggerOptions = {}, base: Fields = {}): Logger {
  const min = RANK[opts.level ?? 'info']
  const write = opts.write ?? ((line: string) => void process.stderr.write(line))
  const now = opts.now ?? (() => new Date())
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (RANK[level] < min) return
    const rec: Record<string, unknown> = {time: now().toISOString(), level, msg: scrubUrls(msg)}
    for (const [k, v] of Object.entries({...base, ...fields})) {
      if (v !== undefined && k !== 'time' && k !== 'level' && k !== 'msg')
        rec[k] = typeof v === 'string' ? scrubUrls(v) : Array.isArray(v) ? v.map(scrubUrls) : v
    }
    write(JSON.stringify(rec) + '\n')
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (f) => createLogger(opts, {...base, ...f}),
  }
}
