/** Go-style durations for flags: `30d`, `720h`, `1h30m`, `15s`, `500ms`, or `0`. */
import {KsealError} from './errors.js'

const UNITS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}

export function parseDuration(s: string, flag: string): number {
  const t = s.trim()
  if (t === '0') return 0
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy
  let total = 0
  let matched = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(t))) {
    total += Number(m[1]) * UNITS[m[2]]
    matched = re.lastIndex
  }
  if (!t || matched !== t.length)
    throw new KsealError('ERR_USAGE', `--${flag} ${JSON.stringify(s)}: expected a duration such as 30d, 720h, 90m, 15s, 500ms or 0`)
  return Math.round(total)
}

/** An RFC 3339 timestamp for a flag (`2026-03-01T00:00:00Z`, `2026-03-01T09:30:00+01:00`). */
export function parseTime(s: string, flag: string): Date {
  const t = s.trim()
  const ok = /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/.test(t)
  const d = new Date(t.replace(' ', 'T'))
  if (!ok || Number.isNaN(d.getTime()))
    throw new KsealError('ERR_USAGE', `--${flag} ${JSON.stringify(s)}: expected an RFC 3339 time such as 2026-03-01T00:00:00Z`)
  return d
}

/** A duration in the form parseDuration reads, in its largest whole unit: 30000 → `30s`, 2_592_000_000 → `30d`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0'
  const [unit, size] = Object.entries(UNITS)
    .reverse()
    .find(([, size]) => ms % size === 0) ?? ['ms', 1]
  return `${ms / size}${unit}`
}
