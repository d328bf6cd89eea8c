/**
 * ServiceAccount tokens for the Kubernetes API test server (../k8s-api-server.ts), as kube-apiserver
 * (~v1.31) issues and checks them:
 *
 * - `POST /api/v1/namespaces/NS/serviceaccounts/SA/token` (authentication.k8s.io/v1 TokenRequest):
 *   audiences (default: the API audiences), expirationSeconds (default 3600; 422 below 10 minutes or
 *   above 2^32 s; shortened with a Warning to --service-account-max-token-expiration), optional
 *   boundObjectRef to a Secret (or a Pod, when a `pods` resource is registered). Answers 201 with
 *   `status.token` (an RS256 JWT with `kid`, claims aud, exp, iat, iss, jti, nbf, sub
 *   `system:serviceaccount:NS:SA` and the `kubernetes.io` claim) and `status.expirationTimestamp`.
 * - `POST /apis/authentication.k8s.io/v1/tokenreviews`: verifies signature and issuer, the audiences
 *   (spec.audiences, default the API audiences), expiry and not-before (one minute of leeway), and
 *   that the ServiceAccount (same UID) and any bound object still exist; answers with
 *   status.authenticated / user (username, uid, groups, extra credential-id) / audiences, or
 *   status.error with the apiserver's wording.
 * - `GET /.well-known/openid-configuration` and `GET /openid/v1/jwks` (served without
 *   authentication, as clusters that publish their issuer do), so STS or Vault can verify tokens
 *   offline. The issuer defaults to the server's own URL, so discovery works over the socket.
 * - Requests whose bearer token is one of these JWTs authenticate as the ServiceAccount (an invalid
 *   one gets 401); an optional authorizer decides what each user may do (403 Forbidden with the
 *   RBAC message). Without an authorizer every authenticated request is allowed, as before.
 *
 * Simplifications: one signing key; no legacy Secret-based tokens, no node binding, no
 * extended-expiration (3607 s) tokens, no token caching; `default` ServiceAccounts are not created
 * in new namespaces; deleted objects count as gone at once (no one-minute grace); the authorizer is a
 * function, not RBAC objects.
 */
import {createHash, generateKeyPairSync, type KeyObject, randomUUID, sign, verify} from 'node:crypto'
import {type Clock, systemClock} from '../clock.js'
import type {StatusError} from './status.js'
import type {FieldError, KubeObject, RequestInfo, ResourceDefinition} from './types.js'

export const SERVICE_ACCOUNT_DEFINITION: ResourceDefinition = {
  group: '',
  version: 'v1',
  resource: 'serviceaccounts',
  kind: 'ServiceAccount',
  singular: 'serviceaccount',
  namespaced: true,
  shortNames: ['sa'],
  knownFields: ['apiVersion', 'kind', 'metadata', 'secrets', 'imagePullSecrets', 'automountServiceAccountToken'],
}

export interface UserInfo {
  username: string
  uid?: string
  groups: string[]
  extra?: Record<string, string[]>
}

/** Who a request is when it carries the server's static token (or none and no token is required). */
export const ADMIN_USER: UserInfo = {username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated']}

/** What an authorizer decides on (authorizer.Attributes for resource requests). */
export interface AuthorizationAttributes {
  user: UserInfo
  verb: string
  apiGroup: string
  resource: string
  subresource?: string
  namespace?: string
  name?: string
}

/** true = allowed. Members of system:masters are always allowed, as with RBAC. */
export type Authorizer = (attrs: AuthorizationAttributes) => boolean

export interface TokenOptions {
  /** `iss` of issued tokens (--service-account-issuer). Default: the server's URL. */
  serviceAccountIssuer?: string
  /** Default audiences of TokenRequest and TokenReview (--api-audiences). Default: [issuer]. */
  apiAudiences?: string[]
  /** --service-account-max-token-expiration, in seconds (0 / omitted: no limit). */
  serviceAccountMaxTokenExpirationSeconds?: number
  /** Time for iat/exp and expiry checks. */
  clock?: Clock
  authorizer?: Authorizer
}

export interface IssueOptions {
  audiences?: string[]
  expirationSeconds?: number
}

export interface IssuedToken {
  token: string
  /** RFC 3339, as in TokenRequest status.expirationTimestamp. */
  expirationTimestamp: string
}

/** What the token API needs from the API server it lives in (injected: no import cycle). */
export interface TokenHost {
  url(): string
  getObject(apiVersion: string, kindOrResource: string, namespace: string | undefined, name: string): KubeObject | undefined
  /** Whether a resource (e.g. pods) is served. */
  serves(apiVersion: string, kindOrResource: string): boolean
  errors: {
    notFound(def: Pick<ResourceDefinition, 'group' | 'resource'>, name: string): StatusError
    invalid(group: string, kind: string, name: string, errs: FieldError[]): StatusError
    badRequest(message: string): StatusError
    methodNotAllowed(): StatusError
    unauthorized(): StatusError
    genericNotFound(): StatusError
  }
  /** A Status error with this code, reason, message and details. */
  status(code: number, reason: string, message: string, details?: KubeObject): StatusError
}

export interface TokenResponse {
  code: number
  body: KubeObject
  headers?: Record<string, string>
}

interface Claims {
  aud?: string[] | string
  exp?: number
  iat?: number
  iss?: string
  jti?: string
  nbf?: number
  sub?: string
  'kubernetes.io'?: {
    namespace?: string
    serviceaccount?: {name?: string; uid?: string}
    secret?: {name?: string; uid?: string}
    pod?: {name?: string; uid?: string}
  }
}

type Review = {user: UserInfo; audiences: string[]} | {error: string} | null

const AUTH_GROUP = 'authentication.k8s.io'
/** Objects a token can be bound to: claim name → Kind. */
const BOUND_KINDS = {secret: 'Secret', pod: 'Pod'} as const
const LEEWAY_S = 60
const MIN_EXPIRATION_S = 600
const MAX_EXPIRATION_S = 2 ** 32

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z')
}

/** Go's %q of a []string: ["a" "b"]. */
function goStrings(list: string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`
}

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url')
}

function isObj(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export class ServiceAccountTokens {
  private key?: {privateKey: KeyObject; publicKey: KeyObject; kid: string}
  private readonly clock: Clock

  constructor(
    private readonly host: TokenHost,
    private readonly opts: TokenOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock
  }

  get issuer(): string {
    return this.opts.serviceAccountIssuer ?? this.host.url()
  }

  get apiAudiences(): string[] {
    return this.opts.apiAudiences ?? [this.issuer]
  }

  /** The signing key, made on first use (RSA-2048 takes tens of ms; most test servers never need one). */
  private signingKey(): {privateKey: KeyObject; publicKey: KeyObject; kid: string} {
    if (!this.key) {
      const {privateKey, publicKey} = generateKeyPairSync('rsa', {modulusLength: 2048})
      const kid = createHash('sha256')
        .update(publicKey.export({type: 'spki', format: 'der'}))
        .digest('base64url')
      this.key = {privateKey, publicKey, kid}
    }
    return this.key
  }

  // ---- issuing ----

  /** Issue a token for an existing ServiceAccount (what `kubectl create token` gets). */
  issue(namespace: string, name: string, opts: IssueOptions = {}): IssuedToken {
    const sa = this.host.getObject('v1', 'ServiceAccount', namespace, name)
    if (!sa) throw this.host.errors.notFound(SERVICE_ACCOUNT_DEFINITION, name)
    return this.sign(sa, opts.audiences ?? this.apiAudiences, opts.expirationSeconds ?? 3600)
  }

  private sign(
    sa: KubeObject,
    audiences: string[],
    expirationSeconds: number,
    bound?: {kind: keyof typeof BOUND_KINDS; name: string; uid: string},
  ): IssuedToken {
    const {privateKey, kid} = this.signingKey()
    const now = Math.floor(this.clock.now() / 1000)
    const k8s: NonNullable<Claims['kubernetes.io']> = {
      namespace: sa.metadata.namespace,
      serviceaccount: {name: sa.metadata.name, uid: sa.metadata.uid},
    }
    if (bound) k8s[bound.kind] = {name: bound.name, uid: bound.uid}
    const claims: Claims = {
      aud: audiences,
      exp: now + expirationSeconds,
      iat: now,
      iss: this.issuer,
      jti: randomUUID(),
      'kubernetes.io': k8s,
      nbf: now,
      sub: `system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}`,
    }
    const input = `${b64url(JSON.stringify({alg: 'RS256', kid}))}.${b64url(JSON.stringify(claims))}`
    const token = `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`
    return {token, expirationTimestamp: rfc3339((now + expirationSeconds) * 1000)}
  }

  // ---- checking ----

  /**
   * Review a token as the ServiceAccount token authenticator does: null when it is not one of
   * ours (another issuer, not a JWT), an error when it is ours but not valid (now, for these
   * audiences), else the user.
   */
  review(token: string, audiences: string[] = this.apiAudiences): Review {
    const parts = token.split('.')
    if (parts.length !== 3 || token.trim().startsWith('{')) return null
    let header: KubeObject
    let claims: Claims
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'))
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
    } catch {
      return null
    }
    if (!isObj(header) || !isObj(claims) || claims.iss !== this.issuer) return null
    const {publicKey, kid} = this.signingKey()
    if (header.kid !== undefined && header.kid !== kid) return {error: 'invalid signature, no keys found'}
    const ok =
      header.alg === 'RS256' && verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2]!, 'base64url'))
    if (!ok) return {error: 'square/go-jose: error in cryptographic primitive'}

    const tokenAudiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : this.apiAudiences
    const granted = tokenAudiences.filter((a) => audiences.includes(a))
    if (granted.length === 0)
      return {error: `token audiences ${goStrings(tokenAudiences)} is invalid for the target audiences ${goStrings(audiences)}`}
    const now = this.clock.now() / 1000
    if (typeof claims.exp === 'number' && now - LEEWAY_S > claims.exp) return {error: 'service account token has expired'}
    if (typeof claims.nbf === 'number' && now + LEEWAY_S < claims.nbf) return {error: 'service account token is not valid yet'}

    const k8s = claims['kubernetes.io'] ?? {}
    const ns = k8s.namespace ?? ''
    const saName = k8s.serviceaccount?.name ?? ''
    const sa = this.host.getObject('v1', 'ServiceAccount', ns, saName)
    if (!sa) return {error: `serviceaccounts ${JSON.stringify(saName)} not found`}
    if (sa.metadata.deletionTimestamp) return {error: `service account ${ns}/${saName} has been deleted`}
    if (sa.metadata.uid !== k8s.serviceaccount?.uid)
      return {error: `service account UID (${sa.metadata.uid}) does not match claim (${k8s.serviceaccount?.uid})`}
    const extra: Record<string, string[]> = {}
    for (const kind of Object.keys(BOUND_KINDS) as (keyof typeof BOUND_KINDS)[]) {
      const ref = k8s[kind]
      if (!ref) continue
      const obj = this.host.serves('v1', BOUND_KINDS[kind]) ? this.host.getObject('v1', BOUND_KINDS[kind], ns, ref.name ?? '') : undefined
      if (!obj || obj.metadata.deletionTimestamp) return {error: 'service account token has been invalidated'}
      if (obj.metadata.uid !== ref.uid)
        return {error: `${kind} UID (${obj.metadata.uid}) does not match service account ${kind} ref claim (${ref.uid})`}
      if (kind === 'pod') {
        extra['authentication.kubernetes.io/pod-name'] = [ref.name ?? '']
        extra['authentication.kubernetes.io/pod-uid'] = [ref.uid ?? '']
      }
    }
    if (claims.jti) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`]
    return {
      user: {
        username: `system:serviceaccount:${ns}:${saName}`,
        uid: sa.metadata.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
        extra,
      },
      audiences: granted,
    }
  }

  /**
   * Authenticate a request's Authorization header: the ServiceAccount user for a valid token of
   * ours, null for anything else (the caller applies its own token rule), 401 for an invalid one.
   */
  authenticate(authorization: string | undefined): UserInfo | null {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')
    if (!m) return null
    const r = this.review(m[1]!)
    if (r === null) return null
    if ('error' in r) throw this.host.errors.unauthorized()
    return r.user
  }

  /** 403 Forbidden, worded as the apiserver's RBAC denial, when the authorizer says no. */
  authorize(user: UserInfo, info: RequestInfo): void {
    if (!this.opts.authorizer || !info.isResourceRequest || user.groups.includes('system:masters')) return
    const attrs: AuthorizationAttributes = {
      user,
      verb: info.verb,
      apiGroup: info.apiGroup ?? '',
      resource: info.resource ?? '',
      subresource: info.subresource,
      namespace: info.namespace,
      name: info.name,
    }
    if (this.opts.authorizer(attrs)) return
    const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource
    const where = attrs.namespace ? `in the namespace ${JSON.stringify(attrs.namespace)}` : 'at the cluster scope'
    const why = `User ${JSON.stringify(user.username)} cannot ${attrs.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(attrs.apiGroup)} ${where}`
    const qualified = attrs.apiGroup ? `${attrs.resource}.${attrs.apiGroup}` : attrs.resource
    const details: KubeObject = {}
    if (attrs.name) details.name = attrs.name
    if (attrs.apiGroup) details.group = attrs.apiGroup
    details.kind = attrs.resource
    throw this.host.status(
      403,
      'Forbidden',
      `${qualified}${attrs.name ? ` ${JSON.stringify(attrs.name)}` : ''} is forbidden: ${why}`,
      details,
    )
  }

  // ---- HTTP endpoints ----

  /** The OIDC discovery documents (unauthenticated), or undefined for other paths. */
  serveDiscovery(method: string, path: string): {code: number; body: KubeObject; contentType: string} | undefined {
    if (method !== 'GET') return undefined
    if (path === '/.well-known/openid-configuration') {
      return {
        code: 200,
        contentType: 'application/json',
        body: {
          issuer: this.issuer,
          jwks_uri: `${this.host.url()}/openid/v1/jwks`,
          response_types_supported: ['id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        },
      }
    }
    if (path === '/openid/v1/jwks') {
      const {publicKey, kid} = this.signingKey()
      const jwk = publicKey.export({format: 'jwk'})
      return {
        code: 200,
        contentType: 'application/jwk-set+json',
        body: {keys: [{use: 'sig', kty: 'RSA', kid, alg: 'RS256', n: jwk.n, e: jwk.e}]},
      }
    }
    return undefined
  }

  /** TokenRequest and TokenReview; undefined when the request is for neither. */
  serve(info: RequestInfo, body: Buffer): TokenResponse | undefined {
    const isTokenRequest =
      info.apiGroup === '' && info.apiVersion === 'v1' && info.resource === 'serviceaccounts' && info.subresource === 'token'
    const isTokenReview = info.apiGroup === AUTH_GROUP && info.apiVersion === 'v1' && info.resource === 'tokenreviews'
    if (!isTokenRequest && !isTokenReview) return undefined
    if (isTokenReview && (info.namespace !== undefined || info.name !== undefined)) throw this.host.errors.genericNotFound()
    if (info.verb !== 'create') throw this.host.errors.methodNotAllowed()
    const obj = this.decode(body)
    return isTokenRequest ? this.tokenRequest(info.namespace ?? '', info.name ?? '', obj) : this.tokenReview(obj)
  }

  private decode(body: Buffer): KubeObject {
    let obj: unknown
    try {
      obj = JSON.parse(body.toString('utf8'))
    } catch (e) {
      throw this.host.errors.badRequest(`couldn't get version/kind; json parse error: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (!isObj(obj)) throw this.host.errors.badRequest('the body of the request must be a JSON object')
    return obj
  }

  private tokenRequest(namespace: string, name: string, req: KubeObject): TokenResponse {
    const meta: KubeObject = isObj(req.metadata) ? req.metadata : {}
    const invalid = (field: string, value: unknown, detail: string, objName = name) =>
      this.host.errors.invalid(AUTH_GROUP, 'TokenRequest', objName, [{type: 'Invalid', field, value, detail}])
    if (meta.name && meta.name !== name) throw invalid('metadata.name', meta.name, 'must match the service account name if specified')
    if (meta.namespace && meta.namespace !== namespace)
      throw invalid('metadata.namespace', meta.namespace, 'must match the service account namespace if specified')
    const sa = this.host.getObject('v1', 'ServiceAccount', namespace, name)
    if (!sa) throw this.host.errors.notFound(SERVICE_ACCOUNT_DEFINITION, name)

    const spec: KubeObject = isObj(req.spec) ? req.spec : {}
    const audiences = Array.isArray(spec.audiences) && spec.audiences.length > 0 ? (spec.audiences as string[]) : this.apiAudiences
    let expirationSeconds = spec.expirationSeconds ?? 3600
    if (!Number.isInteger(expirationSeconds)) throw this.host.errors.badRequest('spec.expirationSeconds must be an integer')
    if (expirationSeconds < MIN_EXPIRATION_S)
      throw invalid('spec.expirationSeconds', expirationSeconds, 'may not specify a duration less than 10 minutes', '')
    if (expirationSeconds > MAX_EXPIRATION_S)
      throw invalid('spec.expirationSeconds', expirationSeconds, 'may not specify a duration larger than 2^32 seconds', '')

    let bound: {kind: keyof typeof BOUND_KINDS; name: string; uid: string} | undefined
    const ref = isObj(spec.boundObjectRef) ? spec.boundObjectRef : undefined
    if (ref) {
      const kind = (Object.keys(BOUND_KINDS) as (keyof typeof BOUND_KINDS)[]).find((k) => BOUND_KINDS[k] === ref.kind)
      const [group, version] = String(ref.apiVersion ?? 'v1').includes('/')
        ? String(ref.apiVersion).split('/')
        : ['', String(ref.apiVersion ?? 'v1')]
      if (!kind || group !== '')
        throw this.host.errors.badRequest(`cannot bind token to object of type ${group}/${version}, Kind=${ref.kind}`)
      const obj = this.host.serves('v1', BOUND_KINDS[kind])
        ? this.host.getObject('v1', BOUND_KINDS[kind], namespace, String(ref.name ?? ''))
        : undefined
      if (!obj) throw this.host.errors.notFound({group: '', resource: `${kind}s`}, String(ref.name ?? ''))
      if (kind === 'pod' && obj.spec?.serviceAccountName !== name) {
        throw this.host.errors.badRequest(
          `cannot bind token for serviceaccount ${JSON.stringify(name)} to pod running with different serviceaccount name.`,
        )
      }
      if (ref.uid && ref.uid !== obj.metadata.uid) {
        throw this.host.status(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${ref.kind} ${JSON.stringify(ref.name)}: ` +
            `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
          {name: ref.name, kind: ref.kind},
        )
      }
      bound = {kind, name: obj.metadata.name, uid: obj.metadata.uid}
    }

    const headers: Record<string, string> = {}
    const max = this.opts.serviceAccountMaxTokenExpirationSeconds ?? 0
    if (max > 0 && expirationSeconds > max) {
      headers.Warning = `299 - ${JSON.stringify(`requested expiration of ${expirationSeconds} seconds shortened to ${max} seconds`)}`
      expirationSeconds = max
    }
    const issued = this.sign(sa, audiences, expirationSeconds, bound)
    return {
      code: 201,
      headers,
      body: {
        kind: 'TokenRequest',
        apiVersion: `${AUTH_GROUP}/v1`,
        metadata: {name, namespace, uid: sa.metadata.uid, creationTimestamp: rfc3339(this.clock.now())},
        spec: {
          audiences,
          expirationSeconds,
          boundObjectRef: ref ? {kind: ref.kind, apiVersion: ref.apiVersion ?? 'v1', name: ref.name, uid: bound!.uid} : null,
        },
        status: issued,
      },
    }
  }

  private tokenReview(req: KubeObject): TokenResponse {
    const spec: KubeObject = isObj(req.spec) ? req.spec : {}
    const token = typeof spec.token === 'string' ? spec.token : ''
    if (token === '') throw this.host.errors.badRequest(`token is required for TokenReview in ${AUTH_GROUP}/__internal`)
    const requested = Array.isArray(spec.audiences) && spec.audiences.length > 0 ? (spec.audiences as string[]) : undefined
    const r = this.review(token, requested ?? this.apiAudiences)
    const status: KubeObject = r !== null && 'user' in r ? {authenticated: true, user: r.user, audiences: r.audiences} : {user: {}}
    if (r !== null && 'error' in r) status.error = r.error
    const outSpec: KubeObject = {token}
    if (requested) outSpec.audiences = requested
    return {
      code: 201,
      body: {kind: 'TokenReview', apiVersion: `${AUTH_GROUP}/v1`, metadata: {creationTimestamp: null}, spec: outSpec, status},
    }
  }

  // ---- discovery entries ----

  /** Groups to add to /apis when no registered resource serves them. */
  groups(): string[] {
    return [AUTH_GROUP]
  }

  /** Extra APIResourceList entries for a group/version. */
  resources(group: string, version: string): KubeObject[] {
    if (version !== 'v1') return []
    if (group === '')
      return [
        {
          name: 'serviceaccounts/token',
          singularName: '',
          namespaced: true,
          group: AUTH_GROUP,
          version: 'v1',
          kind: 'TokenRequest',
          verbs: ['create'],
        },
      ]
    if (group === AUTH_GROUP)
      return [{name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create']}]
    return []
  }
}
