/** Waiting in tests: for an event or a counter, never for a fixed time that happens to suffice. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls (every `intervalMs`) until `f` gives a truthy value; fails naming `what` after the timeout. */
export async function until<T>(
  f: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(intervalMs)
  }
}
