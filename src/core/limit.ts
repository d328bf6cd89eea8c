/** Two small limits shared by the backends, the controller and its clients. */

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

  constructor(readonly rate: number, readonly burst: number, private readonly now: () => number = Date.now) {
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
