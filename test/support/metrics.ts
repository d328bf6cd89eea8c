/** Reading the controller's /metrics in tests and the benchmark. */

/** Reads one sample from Prometheus text: `name` or `name{a="b"}`. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    if (i > 0 && line.slice(0, i) === series) return Number(line.slice(i + 1))
  }
  return undefined
}
