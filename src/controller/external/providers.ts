/**
 * The controller's open providers: one per store and ExternalSecret namespace (a store's
 * references resolve in the ExternalSecret's namespace, so a ClusterSecretStore has one provider per
 * namespace that uses it), kept while the store is unchanged — logins, tokens and connections are
 * reused — and closed when the store changes or goes. Every remote call goes through the store's
 * StoreLimiter: a call waits for the store's token bucket (a short wait in place; a long one hands
 * the ExternalSecret back to the queue, so one slow store never holds the workers other stores need),
 * and a store that throttles is paused for its Retry-After, then paced at the steady rate.
 */
import {isKsealError, KsealError} from '../../core/errors.js'
import {sleep} from '../../core/retry.js'
import type {NameMatcher} from '../../core/regex.js'
import {StoreLimiter} from '../../external/limiter.js'
import {
  type AwsOptions,
  type FetchRef,
  type KubernetesOptions,
  openProvider,
  type Provider,
  type ProviderName,
  type RemoteValue,
  type VaultOptions,
} from '../../external/providers/index.js'
import type {StoreAccess} from '../../external/store.js'
import type {FindRef, SecretStore} from '../../external/types.js'

/** Waits for a store's rate limit up to this long in place; longer, the ExternalSecret is requeued for then. */
const INLINE_WAIT_MS = 250
/** Tries of one remote call that the store throttles, before the reconcile fails with ERR_THROTTLED. */
const THROTTLED_TRIES = 3

/** A call that must wait for its store's rate limit longer than INLINE_WAIT_MS: requeue the ExternalSecret after `waitMs`. */
class PacedError extends KsealError {
  constructor(
    readonly store: string,
    readonly waitMs: number,
  ) {
    super('ERR_THROTTLED', `${store}: paced by its rate limit for ${waitMs} ms`)
  }
}

export const isPaced = (e: unknown): e is PacedError => e instanceof PacedError

/** A store's identity: `SecretStore/apps/aws`, `ClusterSecretStore//shared`. */
const storeKey = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`

export interface StoreProvidersOptions {
  access: StoreAccess
  aws?: AwsOptions
  vault?: VaultOptions
  kubernetes?: KubernetesOptions
  /** Calls a second to one store, and how many at once after a quiet spell. */
  rate: number
  burst: number
  now?: () => number
  /** Each remote call, by provider and result (ok, not_found, denied, throttled, error). */
  onCall?: (provider: ProviderName, result: string) => void
  /** A store answered "slow down". */
  onThrottled?: (store: string, retryAfterMs: number) => void
}

interface Open {
  /** The store version it was opened for (uid and generation). */
  version: string
  provider: Promise<Provider>
}

const resultOf = (e: unknown): string => {
  if (!isKsealError(e)) return 'error'
  return {ERR_NOT_FOUND: 'not_found', ERR_DENIED: 'denied', ERR_THROTTLED: 'throttled'}[e.code as string] ?? 'error'
}

export class StoreProviders {
  private readonly open = new Map<string, Open>()
  private readonly limiter: StoreLimiter
  private readonly now: () => number

  constructor(private readonly o: StoreProvidersOptions) {
    this.now = o.now ?? Date.now
    this.limiter = new StoreLimiter({rate: o.rate, burst: o.burst, now: this.now})
  }

  /** The provider of `store` for ExternalSecrets of `namespace`, paced by the store's limiter; opened once per store version. */
  async get(store: SecretStore, namespace: string, signal?: AbortSignal): Promise<Provider> {
    const sk = storeKey(store.kind, store.metadata.namespace, store.metadata.name)
    const key = `${sk}\u0000${namespace}`
    const version = `${store.metadata.uid ?? ''}/${store.metadata.generation ?? ''}`
    let entry = this.open.get(key)
    if (entry && entry.version !== version) {
      this.close(key, entry)
      entry = undefined
    }
    if (!entry) {
      const provider = openProvider(store, {
        namespace,
        access: this.o.access,
        aws: this.o.aws,
        vault: this.o.vault,
        kubernetes: this.o.kubernetes,
        now: this.now,
      })
      entry = {version, provider}
      this.open.set(key, entry)
      // A provider that failed to open is opened again next time.
      provider.catch(() => {
        if (this.open.get(key) === entry) this.open.delete(key)
      })
    }
    return this.paced(sk, await entry.provider, signal)
  }

  /** Closes every provider of a store (it changed or was deleted): the next use opens it afresh. */
  forgetStore(kind: string, namespace: string, name: string): void {
    const sk = storeKey(kind, namespace, name)
    for (const [key, entry] of this.open) if (key.startsWith(`${sk}\u0000`)) this.close(key, entry)
  }

  async closeAll(): Promise<void> {
    const all = [...this.open.values()]
    this.open.clear()
    await Promise.all(all.map((e) => e.provider.then((p) => p.close()).catch(() => undefined)))
  }

  private close(key: string, entry: Open): void {
    this.open.delete(key)
    entry.provider.then((p) => p.close()).catch(() => undefined)
  }

  /** The provider with every call paced by the store's limiter and counted. */
  private paced(store: string, p: Provider, signal?: AbortSignal): Provider {
    const call = async <T>(fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        const wait = this.limiter.reserve(store)
        if (wait > 0) {
          if (wait > INLINE_WAIT_MS) throw new PacedError(store, wait)
          await sleep(wait, signal)
          continue
        }
        signal?.throwIfAborted()
        try {
          const v = await fn()
          this.o.onCall?.(p.name, 'ok')
          return v
        } catch (e) {
          this.o.onCall?.(p.name, resultOf(e))
          if (isKsealError(e) && e.code === 'ERR_THROTTLED') {
            const after = (e as {retryAfterMs?: number}).retryAfterMs ?? 1000
            this.limiter.throttled(store, after)
            this.o.onThrottled?.(store, after)
            if (attempt < THROTTLED_TRIES) continue
          }
          throw e
        }
      }
    }
    return {
      name: p.name,
      fetch: (ref: FetchRef): Promise<RemoteValue> => call(() => p.fetch(ref)),
      find: (f: FindRef, m: NameMatcher | undefined) => call(() => p.find(f, m)),
      cacheKey: p.cacheKey?.bind(p),
      close: () => p.close(),
    }
  }
}
