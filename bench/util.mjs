/** Small helpers the benchmark scripts share. */
import {readFileSync} from 'node:fs'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export const mb = (b) => `${Math.round(b / 1048576)} MB`

/** A process's peak resident set (VmHWM) in bytes, when /proc tells. */
export function peakRssBytes(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** A numeric command-line option (`--name N`), or the fallback. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
