/**
 * A local AWS STS that speaks the real wire protocol (awsQuery: form-encoded `POST /` with
 * `Action=...&Version=2011-06-15`, XML responses and `<ErrorResponse>` errors), so credential
 * providers are exercised through the real `@aws-sdk/client-sts`, `@aws-sdk/credential-providers`
 * and the SDK's default chain (IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE +
 * AWS_ENDPOINT_URL_STS) over a real socket. Credentials it issues live in the shared AwsIam, so the
 * KMS / Secrets Manager / SSM test servers of the same account accept them (SigV4 with the session's
 * secret, session token required, refused once expired).
 *
 * Faithful: AssumeRole (SigV4-signed; the role's trust names the caller, its role or the account
 * root; sts:ExternalId; DurationSeconds 900..MaxSessionDuration, one hour when chaining roles),
 * AssumeRoleWithWebIdentity (unsigned; the JWT's issuer must be a registered OIDC provider, its
 * `aud` one of the provider's client ids; the signature is checked with keys fetched over HTTP from
 * the issuer's /.well-known/openid-configuration → jwks_uri, as STS does; `exp` checked; the role's
 * trust must name the provider and match the aud/sub conditions), GetCallerIdentity; response
 * shapes; error codes and statuses (AccessDenied 403, InvalidIdentityToken 400,
 * ExpiredTokenException 400, IDPCommunicationError 400, ValidationError 400, InvalidAction 400;
 * SigV4 failures as SignatureDoesNotMatch / InvalidClientTokenId / ExpiredToken 403,
 * IncompleteSignature 400, MissingAuthenticationToken 403; Throttling 400).
 *
 * Simplifications: session policies, tags, MFA and source identity are accepted and ignored; no
 * AssumeRoleWithSAML, GetSessionToken or regional-endpoint rules; JWKS are cached per issuer until
 * a token names an unknown kid; some messages for malformed tokens are our wording.
 */
import {createPublicKey, type JsonWebKey, verify} from 'node:crypto'
import type {IncomingMessage} from 'node:http'
import {type AccessKey, issuerHostPath, type Role, stringLike} from './iam.js'
import {AwsError, AwsServer, type AwsCall, type AwsResponse, type AwsServerOptions, type RequestContext} from './server.js'
import type {AuthFailure} from './sigv4.js'

export type StsOperation = 'AssumeRole' | 'AssumeRoleWithWebIdentity' | 'GetCallerIdentity'

export interface StsCallFields {
  roleArn: string
  roleSessionName: string
  /** `sub` of the web identity token (AssumeRoleWithWebIdentity). */
  subject: string
  /** Access key id of the credentials issued. */
  issuedAccessKeyId: string
}

export type StsCall = AwsCall & Partial<StsCallFields>

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/'
const VERSION = '2011-06-15'
const SESSION_NAME_RE = /^[\w+=,.@-]*$/

const STATUS: Record<string, number> = {
  AccessDenied: 403,
  IDPRejectedClaim: 403,
  MissingAuthenticationToken: 403,
  SignatureDoesNotMatch: 403,
  InvalidClientTokenId: 403,
  ExpiredToken: 403,
  RegionDisabledException: 403,
  InternalFailure: 500,
  ServiceUnavailable: 503,
}

const AUTH_ERROR: Record<AuthFailure['kind'], string> = {
  missing: 'MissingAuthenticationToken',
  incomplete: 'IncompleteSignature',
  signature: 'SignatureDoesNotMatch',
  unrecognized: 'InvalidClientTokenId',
  expired: 'ExpiredToken',
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

type Xml = {[k: string]: string | number | Xml | undefined}

function toXml(fields: Xml): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<${k}>${typeof v === 'object' ? toXml(v) : xmlEscape(String(v))}</${k}>`)
    .join('')
}

function validation(field: string, value: string, constraint: string): AwsError {
  return new AwsError(
    'ValidationError',
    `1 validation error detected: Value '${value}' at '${field}' failed to satisfy constraint: ${constraint}`,
  )
}

interface Jwk {
  kid?: string
  kty?: string
  n?: string
  e?: string
}

export class StsServer extends AwsServer<StsCallFields> {
  declare readonly calls: StsCall[]
  protected readonly service = 'sts'
  private readonly jwksCache = new Map<string, Jwk[]>()

  protected statusOf(type: string): number {
    return STATUS[type] ?? 400
  }

  protected authError(f: AuthFailure): AwsError {
    return new AwsError(AUTH_ERROR[f.kind], f.message)
  }

  protected throttlingError(): AwsError {
    return new AwsError('Throttling', 'Rate exceeded')
  }

  protected internalError(e: unknown): AwsError {
    return new AwsError('InternalFailure', `sts-server bug: ${e instanceof Error ? e.stack : String(e)}`)
  }

  /** The action is in the body; respond() sets it once the body is read. */
  protected operationOf(_req: IncomingMessage): string {
    return ''
  }

  protected async respond(ctx: RequestContext<StsCallFields>): Promise<AwsResponse> {
    const params = new URLSearchParams(ctx.req.method === 'POST' ? ctx.body.toString('utf8') : ((ctx.req.url ?? '').split('?')[1] ?? ''))
    const action = params.get('Action')
    ctx.operation = action ?? ''
    if (!action) throw new AwsError('MissingAction', 'Missing Action')
    const ops: Record<StsOperation, () => Promise<Xml> | Xml> = {
      AssumeRole: () => this.assumeRole(ctx, params),
      AssumeRoleWithWebIdentity: () => this.assumeRoleWithWebIdentity(ctx, params),
      GetCallerIdentity: () => this.getCallerIdentity(ctx),
    }
    if (params.get('Version') !== VERSION || !Object.hasOwn(ops, action)) {
      throw new AwsError(
        'InvalidAction',
        `Could not find operation ${action} for version ${params.get('Version') ?? 'NO_VERSION_SPECIFIED'}`,
      )
    }
    if (action !== 'AssumeRoleWithWebIdentity') this.authenticate(ctx)
    const fault = this.takeFault(action)
    if (fault) throw fault
    this.checkThrottle(ctx)
    const result = await ops[action as StsOperation]()
    const body =
      `<${action}Response xmlns="${XMLNS}"><${action}Result>${toXml(result)}</${action}Result>` +
      `<ResponseMetadata><RequestId>${ctx.requestId}</RequestId></ResponseMetadata></${action}Response>`
    return {status: 200, contentType: 'text/xml', body}
  }

  protected errorResponse(ctx: RequestContext<StsCallFields>, err: AwsError): AwsResponse {
    const status = err.status ?? this.statusOf(err.type)
    const error: Xml = {Type: status >= 500 ? 'Receiver' : 'Sender', Code: err.type, Message: err.hasMessage ? err.message : undefined}
    return {
      status,
      contentType: 'text/xml',
      body: `<ErrorResponse xmlns="${XMLNS}">${toXml({Error: error})}<RequestId>${ctx.requestId}</RequestId></ErrorResponse>`,
    }
  }

  // ---- operations ----

  private commonParams(
    ctx: RequestContext<StsCallFields>,
    params: URLSearchParams,
  ): {role: Role | undefined; roleArn: string; sessionName: string; duration: number} {
    const roleArn = params.get('RoleArn')
    const sessionName = params.get('RoleSessionName')
    if (roleArn === null) throw validation('roleArn', 'null', 'Member must not be null')
    if (sessionName === null) throw validation('roleSessionName', 'null', 'Member must not be null')
    ctx.record.roleArn = roleArn
    ctx.record.roleSessionName = sessionName
    if (roleArn.length < 20 || roleArn.length > 2048)
      throw validation('roleArn', roleArn, 'Member must have length greater than or equal to 20')
    if (sessionName.length < 2 || sessionName.length > 64)
      throw validation('roleSessionName', sessionName, 'Member must have length between 2 and 64')
    if (!SESSION_NAME_RE.test(sessionName))
      throw validation('roleSessionName', sessionName, 'Member must satisfy regular expression pattern: [\\w+=,.@-]*')
    const d = params.get('DurationSeconds')
    const duration = d === null ? 3600 : Number(d)
    if (!Number.isInteger(duration)) throw validation('durationSeconds', String(d), 'Member must be an integer')
    if (duration < 900) throw validation('durationSeconds', String(duration), 'Member must have value greater than or equal to 900')
    if (duration > 43_200) throw validation('durationSeconds', String(duration), 'Member must have value less than or equal to 43200')
    return {role: this.iam.role(roleArn), roleArn, sessionName, duration}
  }

  private credentials(ctx: RequestContext<StsCallFields>, role: Role, sessionName: string, duration: number): {key: AccessKey; xml: Xml} {
    if (duration > role.maxSessionDurationSeconds)
      throw new AwsError('ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.')
    const key = this.iam.issueSession(role, sessionName, duration)
    ctx.record.issuedAccessKeyId = key.accessKeyId
    return {
      key,
      xml: {
        AssumedRoleUser: {AssumedRoleId: key.principal.userId, Arn: key.principal.arn},
        Credentials: {
          AccessKeyId: key.accessKeyId,
          SecretAccessKey: key.secretAccessKey,
          SessionToken: key.sessionToken!,
          Expiration: new Date(key.expiration!).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        },
      },
    }
  }

  private assumeRole(ctx: RequestContext<StsCallFields>, params: URLSearchParams): Xml {
    const {role, roleArn, sessionName, duration} = this.commonParams(ctx, params)
    const caller = ctx.caller!
    const denied = () =>
      new AwsError('AccessDenied', `User: ${caller.principal.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`)
    if (!role) throw denied()
    const trusted = role.trust.principals ?? []
    const names = [caller.principal.arn, caller.principal.roleArn].filter((x): x is string => x !== undefined)
    const inAccount = caller.principal.arn.split(':')[4] === this.accountId
    if (!names.some((n) => trusted.includes(n)) && !(inAccount && trusted.includes(`arn:aws:iam::${this.accountId}:root`))) throw denied()
    if (role.trust.externalId !== undefined && params.get('ExternalId') !== role.trust.externalId) throw denied()
    if (caller.principal.roleArn !== undefined && duration > 3600) {
      throw new AwsError(
        'ValidationError',
        'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.',
      )
    }
    return this.credentials(ctx, role, sessionName, duration).xml
  }

  private async assumeRoleWithWebIdentity(ctx: RequestContext<StsCallFields>, params: URLSearchParams): Promise<Xml> {
    const {role, sessionName, duration} = this.commonParams(ctx, params)
    const token = params.get('WebIdentityToken')
    if (token === null) throw validation('webIdentityToken', 'null', 'Member must not be null')
    if (token.length < 4 || token.length > 20_000)
      throw validation('webIdentityToken', '***', 'Member must have length between 4 and 20000')

    const parts = token.split('.')
    let header: Record<string, unknown>
    let claims: Record<string, unknown>
    try {
      if (parts.length !== 3) throw new Error('not three parts')
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'))
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
    } catch {
      throw new AwsError(
        'InvalidIdentityToken',
        'The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)',
      )
    }
    const iss = typeof claims.iss === 'string' ? claims.iss : ''
    const sub = typeof claims.sub === 'string' ? claims.sub : ''
    ctx.record.subject = sub
    const provider = this.iam.oidcProvider(iss)
    if (!provider) throw new AwsError('InvalidIdentityToken', `No OpenIDConnect provider found in your account for ${iss}`)
    const audiences =
      typeof claims.aud === 'string'
        ? [claims.aud]
        : Array.isArray(claims.aud)
          ? claims.aud.filter((a): a is string => typeof a === 'string')
          : []
    const audience = audiences.find((a) => provider.clientIds.includes(a))
    if (audience === undefined) throw new AwsError('InvalidIdentityToken', 'Incorrect token audience')

    const key = await this.verificationKey(iss, typeof header.kid === 'string' ? header.kid : undefined)
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`)
    if (
      header.alg !== 'RS256' ||
      !verify('sha256', signed, createPublicKey({key: key as JsonWebKey, format: 'jwk'}), Buffer.from(parts[2]!, 'base64url'))
    ) {
      throw new AwsError(
        'InvalidIdentityToken',
        'The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.',
      )
    }
    const now = Math.floor(this.clock.now() / 1000)
    if (typeof claims.exp !== 'number' || claims.exp <= now) {
      // AWS's wording, missing space included.
      throw new AwsError(
        'ExpiredTokenException',
        `Token expired: current date/time ${now} must be before the expiration date/time${String(claims.exp)}`,
      )
    }

    const trust = role?.trust.webIdentity
    const conditionsHold =
      trust !== undefined &&
      issuerHostPath(trust.issuer) === issuerHostPath(iss) &&
      audience === (trust.audience ?? 'sts.amazonaws.com') &&
      (trust.subjects === undefined || trust.subjects.some((p) => stringLike(p, sub)))
    if (!role || !conditionsHold) throw new AwsError('AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity')
    const {xml} = this.credentials(ctx, role, sessionName, duration)
    return {SubjectFromWebIdentityToken: sub, Audience: audience, ...xml, Provider: provider.arn}
  }

  private getCallerIdentity(ctx: RequestContext<StsCallFields>): Xml {
    const p = ctx.caller!.principal
    return {UserId: p.userId, Account: this.accountId, Arn: p.arn}
  }

  /** The issuer's signing key for `kid`, fetched (OIDC discovery → jwks_uri) when not cached. */
  private async verificationKey(issuer: string, kid: string | undefined): Promise<Jwk> {
    const pick = (keys: Jwk[] | undefined) => keys?.find((k) => k.kty === 'RSA' && (kid === undefined || k.kid === kid))
    const cached = pick(this.jwksCache.get(issuer))
    if (cached) return cached
    let keys: Jwk[]
    try {
      const get = async (url: string) => {
        const res = await fetch(url, {signal: AbortSignal.timeout(5000)})
        if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
        return (await res.json()) as Record<string, unknown>
      }
      const config = await get(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`)
      const jwks = await get(String(config.jwks_uri))
      keys = Array.isArray(jwks.keys) ? (jwks.keys as Jwk[]) : []
    } catch {
      throw new AwsError(
        'IDPCommunicationError',
        "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
      )
    }
    this.jwksCache.set(issuer, keys)
    const key = pick(keys)
    if (!key)
      throw new AwsError(
        'InvalidIdentityToken',
        "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
      )
    return key
  }
}

/** Start an STS test server on 127.0.0.1 with a random port. */
export async function startStsServer(opts: AwsServerOptions = {}): Promise<StsServer> {
  return new StsServer(opts).listen()
}
