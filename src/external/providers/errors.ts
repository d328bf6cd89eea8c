/** Provider failures as KsealErrors that name store, provider and remote key, never a value. */
import {type ErrorCode, KsealError, ThrottledError} from '../../core/errors.js'

/** A remote error's text cut to one line of at most 300 characters. */
export function detail(text: unknown): string {
  return String(text ?? '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300)
}

export class ProviderErrors {
  /** `where`: the store and provider, e.g. `SecretStore apps/aws (aws SecretsManager)`. */
  constructor(readonly where: string) {}

  private text(key: string | undefined, msg: string): string {
    return `${this.where}: ${key === undefined ? '' : `remote key ${JSON.stringify(key.slice(0, 256))}: `}${msg}`
  }

  error(code: ErrorCode, key: string | undefined, msg: string): KsealError {
    return new KsealError(code, this.text(key, msg))
  }

  throttled(key: string | undefined, retryAfterMs: number, msg: string): ThrottledError {
    return new ThrottledError(this.text(key, msg), retryAfterMs)
  }
}
