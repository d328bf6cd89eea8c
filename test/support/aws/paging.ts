/**
 * NextToken for the local AWS servers: opaque to clients (base64 JSON), bound to the query it came
 * from, so a token replayed with other filters is refused (InvalidNextTokenException / InvalidNextToken)
 * instead of silently skipping results.
 */
import {createHash} from 'node:crypto'

function fingerprint(query: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(query ?? null))
    .digest('base64url')
    .slice(0, 16)
}

export function nextToken(offset: number, query: unknown): string {
  return Buffer.from(JSON.stringify({o: offset, q: fingerprint(query)})).toString('base64')
}

/** The offset a token continues from (0 without a token); undefined when the token is not valid for this query. */
export function tokenOffset(token: string | undefined, query: unknown): number | undefined {
  if (token === undefined) return 0
  try {
    const t = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as {o?: unknown; q?: unknown}
    return Number.isInteger(t.o) && (t.o as number) > 0 && t.q === fingerprint(query) ? (t.o as number) : undefined
  } catch {
    return undefined
  }
}

/**
 * One page of `items` from `offset`: up to `max` items that `keep`, examining at most `scanLimit`
 * items. AWS filters after reading a bounded slice, so a filtered page can come back short, or
 * empty with a NextToken; a finite scanLimit reproduces that. `next` is where the next page starts.
 */
export function page<T>(
  items: readonly T[],
  offset: number,
  max: number,
  keep: (item: T) => boolean,
  scanLimit = Infinity,
): {items: T[]; next?: number} {
  const out: T[] = []
  let i = offset
  let scanned = 0
  while (i < items.length && out.length < max && scanned < scanLimit) {
    if (keep(items[i]!)) out.push(items[i]!)
    i++
    scanned++
  }
  return {items: out, next: i < items.length ? i : undefined}
}
