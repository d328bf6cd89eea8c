/** Limits on concurrent work, shared by the backends, the operations, the controller and its clients: a cap on calls in flight, a token bucket, and the worker pool. */

/** Caps the calls in flight for a whole run, whatever the number of files and Secrets. */
export class Limiter {
  private active = 0
  private readonly waiting: (() => void)[] = []
  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active++
    else await new Promise<void>((resolve) => this.waiting.push(resolve)) // a finishing call hands its slot over
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.active--
    }
  }
}

/** A token bucket: `rate` tokens a second, never more than `burst` saved up. The clock is injected (ms). */
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst
    this.at = now()
  }

  /** Takes a token: 0 when there was one, else the seconds until there will be (nothing is taken then). */
  take(): number {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, t - this.at) / 1000) * this.rate)
    this.at = t
    if (this.tokens >= 1) {
      this.tokens -= 1
      return 0
    }
    return (1 - this.tokens) / this.rate
  }
}

/**
 * The worker pool: runs `fn(i)` for every i in 0..count-1, at most `width` at once, each starting as
 * soon as one finishes (in index order). Rejects with the first failure; callers that must attempt
 * every item catch inside `fn`.
 */
export async function forEachLimited(count: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < count) await fn(next++)
  }
  await Promise.all(Array.from({length: Math.min(width, count)}, worker))
}
