/**
 * One worker of a controller's queue, the loop SealedSecrets and ExternalSecrets share: it takes each
 * key in turn, drops a key whose object is gone (its backoff with it), and runs `handle` (the
 * reconcile and what its outcome decides: requeue, backoff, metrics) between `changes.begin` and
 * `changes.end`, so a change to the written Secret seen meanwhile is judged once the reconcile ended;
 * then marks the key done. It returns when the queue shuts down.
 */
import type {SecretChanges} from './echoes.js'
import type {WorkQueue} from './queue.js'

export async function runWorker<T>(
  queue: WorkQueue,
  changes: SecretChanges,
  lookup: (key: string) => T | undefined,
  handle: (key: string, obj: T) => Promise<void>,
): Promise<void> {
  for (;;) {
    const key = await queue.get()
    if (key === undefined) return
    const obj = lookup(key)
    if (!obj) {
      queue.forget(key)
      queue.done(key)
      continue
    }
    changes.begin(key)
    await handle(key, obj)
    changes.end(queue, key)
    queue.done(key)
  }
}
