/**
 * When each ExternalSecret is refreshed. Every ExternalSecret has a fixed phase within its interval,
 * derived from its uid, and is refreshed at the slots `phase + k × interval` (wall-clock time): the
 * next refresh after a sync at `t` is the first slot after `t`, so it comes at most one interval
 * later, and ExternalSecrets created together (1,000 applied at once, or all of them synced when a
 * replica starts leading) spread their store calls evenly over the interval instead of coming back
 * in a burst. The phase survives restarts and leader changes (the uid does), so a new leader keeps
 * the spread.
 *
 * The next refresh is the first slot at least a quarter interval after the sync: refreshes at their
 * slots follow each other exactly one interval apart, and after a sync off its slot (the first one,
 * a spec or store change, a repair) the next comes between ¼ and 1¼ intervals later — never a second
 * fetch moments after the first (1,000 ExternalSecrets whose initial sync takes a minute would
 * otherwise find some of their slots inside that minute and queue behind it, then fetch twice).
 */
import crypto from 'node:crypto'

/** The ExternalSecret's offset in [0, interval) ms. */
export function refreshPhase(uid: string, intervalMs: number): number {
  if (intervalMs <= 0) return 0
  const h = crypto.createHash('sha256').update(uid).digest()
  // 48 bits of the hash: uniform enough for any interval a duration can name.
  return h.readUIntBE(0, 6) % intervalMs
}

/** The refresh after a sync at `syncedMs` (ms since the epoch): the first slot at least a quarter interval later; undefined for interval 0 (fetch once). */
export function nextRefresh(syncedMs: number, intervalMs: number, phaseMs: number): number | undefined {
  if (intervalMs <= 0) return undefined
  const k = Math.floor((syncedMs + intervalMs / 4 - phaseMs) / intervalMs) + 1
  return k * intervalMs + phaseMs
}

const MAX_TIMEOUT = 2_147_483_647

/** One timer per key, each replacing the last: the refresh schedule of the current term. */
export class RefreshTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>()

  constructor(
    private readonly fire: (key: string) => void,
    private readonly now: () => number,
  ) {}

  /** Fires `key` at `atMs` (ms since the epoch), replacing any earlier timer for it. */
  at(key: string, atMs: number): void {
    this.cancel(key)
    // setTimeout takes at most 2^31-1 ms; a longer wait is re-armed when that fires.
    const wait = Math.max(0, atMs - this.now())
    const capped = wait > MAX_TIMEOUT
    const t = setTimeout(
      () => {
        this.timers.delete(key)
        if (capped) this.at(key, atMs)
        else this.fire(key)
      },
      capped ? MAX_TIMEOUT : wait,
    )
    t.unref()
    this.timers.set(key, t)
  }

  cancel(key: string): void {
    clearTimeout(this.timers.get(key))
    this.timers.delete(key)
  }

  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}
