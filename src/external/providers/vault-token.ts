/**
 * A Vault token kept alive on an injectable clock. After a login the token is used until 2/3 of its
 * TTL, then renewed (`auth/token/renew-self`); when it is not renewable, when renewal fails, when the
 * renewal came back shortened (capped by the max TTL: renewing again would gain nothing) or once it
 * has expired, the next use logs in again. Callers that meet `permission denied` (the token was
 * revoked or expired early) invalidate it and retry once. Concurrent callers share one login or
 * renewal. A static token (tokenSecretRef, VAULT_TOKEN) is used as it is.
 */

export interface VaultLease {
  token: string
  /** Seconds; 0 = never expires (a root token). */
  ttlSeconds: number
  renewable: boolean
}

export interface VaultTokenSource {
  login(): Promise<VaultLease>
  /** renew-self; resolves to the renewed lease. */
  renew(token: string): Promise<VaultLease>
}

interface Held extends VaultLease {
  obtainedAt: number
}

export const RENEW_AT = 2 / 3

export class VaultTokenManager {
  private held?: Held
  private pending?: Promise<string>
  /** Logins and renewals done (for tests and metrics). */
  readonly stats = {logins: 0, renewals: 0}

  constructor(
    private readonly source: VaultTokenSource,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token that is valid now. */
  token(): Promise<string> {
    const h = this.held
    if (h && !this.due(h)) return Promise.resolve(h.token)
    this.pending ??= this.refresh(h).finally(() => {
      this.pending = undefined
    })
    return this.pending
  }

  /** Forget the token (it was refused): the next use logs in again. */
  invalidate(token: string): void {
    if (this.held?.token === token) this.held = undefined
  }

  private due(h: Held): boolean {
    if (h.ttlSeconds === 0) return false
    return this.now() >= h.obtainedAt + h.ttlSeconds * 1000 * RENEW_AT
  }

  private async refresh(h: Held | undefined): Promise<string> {
    const now = this.now()
    const alive = h !== undefined && now < h.obtainedAt + h.ttlSeconds * 1000
    if (h && alive && h.renewable) {
      try {
        const lease = await this.source.renew(h.token)
        this.stats.renewals++
        // Capped by the max TTL: the token will not live longer than this, so log in next time.
        const shortened = lease.ttlSeconds < h.ttlSeconds
        this.held = {...lease, renewable: lease.renewable && !shortened, obtainedAt: now}
        return lease.token
      } catch {
        // Renewal refused (revoked, not renewable after all): fall through to a fresh login.
      }
    }
    const lease = await this.source.login()
    this.stats.logins++
    this.held = {...lease, obtainedAt: now}
    return lease.token
  }
}
