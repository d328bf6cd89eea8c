/**
 * Vault's Kubernetes auth method (vault-plugin-auth-kubernetes), login only: the JWT's claims are
 * read without verifying the signature (as Vault does when no public keys are configured), checked
 * against the role (audience, expiry with a minute of leeway, bound ServiceAccount names and
 * namespaces with globs), and then the token is sent to the Kubernetes API's TokenReview, with the
 * reviewer JWT (or, without one, the client's own JWT) as bearer token, as Vault does; the review
 * must authenticate the same ServiceAccount (name, namespace, UID).
 *
 * Errors as the plugin answers them: 400 `missing role` / `missing jwt` / `invalid role name "x"`;
 * 403 with the claim check's message (`invalid audience (aud) claim: ...`, `invalid expiration time
 * (exp) claim: token is expired`, `service account name not authorized`, `namespace not
 * authorized`); 403 `permission denied` for an unparsable token or a failed TokenReview.
 */
export interface KubernetesAuthConfig {
  /** Base URL of the Kubernetes API (the test API server's url). */
  kubernetesHost: string
  /** Bearer token for TokenReview calls; omitted: the client's JWT reviews itself. */
  tokenReviewerJwt?: string
  /** Expected `iss`; omitted: not checked (Vault's default since 1.9). */
  issuer?: string
}

export interface KubernetesRole {
  /** ServiceAccount names allowed (`*` or globs like `app-*`). */
  boundServiceAccountNames: string[]
  /** Namespaces allowed (`*` or globs). */
  boundServiceAccountNamespaces: string[]
  /** Required `aud` (omitted: any). */
  audience?: string
  policies?: string[]
  /** token_ttl in seconds (default: the server's default TTL). */
  ttl?: number
  /** token_max_ttl in seconds (default: the server's max TTL). */
  maxTtl?: number
}

export interface LoginIdentity {
  name: string
  namespace: string
  uid: string
}

export class LoginError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

const LEEWAY_S = 60

/** Vault's StrListContainsGlob: `*` alone, or one `*` at the start and/or end. */
function globMatch(patterns: string[], value: string): boolean {
  return patterns.some((p) => {
    if (p === '*' || p === value) return true
    const start = p.startsWith('*')
    const end = p.endsWith('*')
    const core = p.slice(start ? 1 : 0, end ? -1 : undefined)
    if (start && end) return value.includes(core)
    if (start) return value.endsWith(core)
    if (end) return value.startsWith(core)
    return false
  })
}

function decodeClaims(jwt: string): Record<string, unknown> | undefined {
  const parts = jwt.split('.')
  if (parts.length !== 3) return undefined
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
    return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? claims : undefined
  } catch {
    return undefined
  }
}

/** Check a login against the role and the Kubernetes API; the ServiceAccount it authenticates. */
export async function kubernetesLogin(
  config: KubernetesAuthConfig,
  role: KubernetesRole,
  jwt: string,
  now: number,
): Promise<LoginIdentity> {
  const claims = decodeClaims(jwt)
  if (!claims) throw new LoginError(403, 'permission denied')
  if (config.issuer !== undefined && claims.iss !== config.issuer) throw new LoginError(403, 'invalid issuer (iss) claim')
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? (claims.aud as string[]) : []
  if (role.audience && !aud.includes(role.audience)) {
    throw new LoginError(403, 'invalid audience (aud) claim: audience claim does not match any expected audience')
  }
  const t = now / 1000
  if (typeof claims.nbf === 'number' && t + LEEWAY_S < claims.nbf)
    throw new LoginError(403, 'invalid not before (nbf) claim: token not yet valid')
  if (typeof claims.exp === 'number' && t - LEEWAY_S > claims.exp)
    throw new LoginError(403, 'invalid expiration time (exp) claim: token is expired')
  const k8s = (claims['kubernetes.io'] ?? {}) as {namespace?: string; serviceaccount?: {name?: string; uid?: string}}
  const sa = {name: k8s.serviceaccount?.name ?? '', namespace: k8s.namespace ?? '', uid: k8s.serviceaccount?.uid ?? ''}
  if (
    !(role.boundServiceAccountNames.length === 1 && role.boundServiceAccountNames[0] === '*') &&
    !globMatch(role.boundServiceAccountNames, sa.name)
  ) {
    throw new LoginError(403, 'service account name not authorized')
  }
  if (!globMatch(role.boundServiceAccountNamespaces, sa.namespace)) throw new LoginError(403, 'namespace not authorized')

  // TokenReview: the Kubernetes API decides whether the token is (still) valid.
  let review: {status?: {authenticated?: boolean; error?: string; user?: {username?: string; uid?: string}}}
  try {
    const res = await fetch(`${config.kubernetesHost.replace(/\/+$/, '')}/apis/authentication.k8s.io/v1/tokenreviews`, {
      method: 'POST',
      headers: {'content-type': 'application/json', authorization: `Bearer ${config.tokenReviewerJwt ?? jwt}`},
      body: JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: {token: jwt, audiences: role.audience ? [role.audience] : aud},
      }),
      signal: AbortSignal.timeout(5000),
    })
    if (res.status < 200 || res.status > 299) throw new Error(`TokenReview: HTTP ${res.status}`)
    review = (await res.json()) as typeof review
  } catch {
    throw new LoginError(403, 'permission denied')
  }
  const parts = (review.status?.user?.username ?? '').split(':')
  if (review.status?.error || !review.status?.authenticated || parts.length !== 4) throw new LoginError(403, 'permission denied')
  if (parts[3] !== sa.name || parts[2] !== sa.namespace || review.status.user?.uid !== sa.uid)
    throw new LoginError(403, 'permission denied')
  return sa
}
