/**
 * Server-side AWS Signature Version 4 verification (header form, `AWS4-HMAC-SHA256`), as the AWS
 * front ends do it: the canonical request is rebuilt from the bytes that arrived (method, path,
 * query, the headers named in SignedHeaders, the SHA-256 of the body), signed with the secret key of
 * the access key the credential scope names, and compared with the signature sent. The credential
 * scope must name today's date (per x-amz-date), this region and this service; x-amz-date must be
 * within five minutes of the server's clock; temporary credentials must carry their session token.
 *
 * Failures come back as an AuthFailure of one of five kinds; each protocol maps a kind to its own
 * error code and status (awsJson: InvalidSignatureException..., awsQuery: SignatureDoesNotMatch...).
 * Messages are the ones AWS sends (the signature mismatch one includes the canonical request and
 * string to sign the server computed, which AWS also returns so a client can compare).
 *
 * Not verified: presigned (query-string) requests, SigV4a, chunked payload signing.
 */
import {createHash, createHmac, timingSafeEqual} from 'node:crypto'

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256'
/** How far x-amz-date may be from the server's clock. */
export const MAX_SKEW_MS = 5 * 60_000

export type AuthFailureKind = 'missing' | 'incomplete' | 'signature' | 'unrecognized' | 'expired'

export class AuthFailure extends Error {
  constructor(
    readonly kind: AuthFailureKind,
    message: string,
  ) {
    super(message)
  }
}

/** What the verifier needs to know about an access key. */
export interface SigningCredential {
  accessKeyId: string
  secretAccessKey: string
  /** Set for temporary (STS) credentials: requests must carry it in X-Amz-Security-Token. */
  sessionToken?: string
  /** Epoch ms after which a temporary credential is refused (ExpiredToken). */
  expiration?: number
}

/** The parts of an HTTP request that SigV4 covers, exactly as received. */
export interface ReceivedRequest {
  method: string
  /** Path and query as on the request line (`req.url`). */
  url: string
  /** Node's `req.rawHeaders`: name, value, name, value... (repeated headers kept). */
  rawHeaders: string[]
  body: Buffer
}

export interface VerifyOptions<C extends SigningCredential = SigningCredential> {
  region: string
  /** Signing name: kms, secretsmanager, ssm, sts. */
  service: string
  now: number
  lookup: (accessKeyId: string) => C | undefined
}

export interface ParsedAuthorization {
  accessKeyId: string
  date: string
  region: string
  service: string
  signedHeaders: string[]
  signature: string
}

const INVALID_TOKEN = 'The security token included in the request is invalid.'

/** RFC 3986 encoding as the SigV4 spec (and the SDK's escapeUri) does it. */
export function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Canonical URI for every service but S3: dot segments removed, then URI-encoded again. */
export function canonicalPath(rawPath: string): string {
  const segments: string[] = []
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') segments.pop()
    else segments.push(seg)
  }
  const normalized = `${rawPath.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && rawPath.endsWith('/') ? '/' : ''}`
  return uriEscape(normalized).replace(/%2F/g, '/')
}

export function canonicalQuery(rawQuery: string): string {
  const pairs: [string, string][] = []
  for (const part of rawQuery.split('&')) {
    if (part === '') continue
    const i = part.indexOf('=')
    const k = i < 0 ? part : part.slice(0, i)
    const v = i < 0 ? '' : part.slice(i + 1)
    const key = uriEscape(decodeComponent(k))
    if (key.toLowerCase() === 'x-amz-signature') continue
    pairs.push([key, uriEscape(decodeComponent(v))])
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
  return pairs.map(([k, v]) => `${k}=${v}`).join('&')
}

/** Every value of each header, by lower-case name, in arrival order. */
export function headerValues(rawHeaders: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    const list = out.get(name) ?? []
    list.push(rawHeaders[i + 1]!)
    out.set(name, list)
  }
  return out
}

function canonicalHeaderValue(values: string[] | undefined): string {
  return (values ?? [])
    .map((v) =>
      v
        .replace(/[\r\n]/g, ' ')
        .replace(/[ \t]+/g, ' ')
        .trim(),
    )
    .join(',')
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest()
}

export function signingKey(secretAccessKey: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date), region), service), 'aws4_request')
}

export function canonicalRequest(req: ReceivedRequest, signedHeaders: string[]): string {
  const q = req.url.indexOf('?')
  const rawPath = q < 0 ? req.url : req.url.slice(0, q)
  const rawQuery = q < 0 ? '' : req.url.slice(q + 1)
  const headers = headerValues(req.rawHeaders)
  return [
    req.method,
    canonicalPath(rawPath),
    canonicalQuery(rawQuery),
    ...signedHeaders.map((h) => `${h}:${canonicalHeaderValue(headers.get(h))}`),
    '',
    signedHeaders.join(';'),
    sha256Hex(req.body),
  ].join('\n')
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n')
}

/** `20240102T030405Z` → epoch ms, or undefined when it is not ISO 8601 basic format. */
export function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s)
  if (!m) return undefined
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
  return Number.isNaN(t) ? undefined : t
}

export function formatAmzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '')
}

/** Parse `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` (no checks against the request). */
export function parseAuthorization(auth: string): ParsedAuthorization {
  const scheme = auth.split(' ')[0] ?? ''
  if (scheme.startsWith('AWS4-') && scheme !== SIGV4_ALGORITHM) {
    throw new AuthFailure('incomplete', `Unsupported AWS 'algorithm': '${scheme}'`)
  }
  const params = new Map<string, string>()
  if (scheme === SIGV4_ALGORITHM) {
    for (const part of auth.slice(SIGV4_ALGORITHM.length).split(',')) {
      const i = part.indexOf('=')
      if (i > 0) params.set(part.slice(0, i).trim(), part.slice(i + 1).trim())
    }
  }
  const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((p) => !params.get(p))
  if (missing.length > 0) {
    throw new AuthFailure(
      'incomplete',
      `${missing.map((p) => `Authorization header requires '${p}' parameter.`).join(' ')} Authorization=${scheme}`,
    )
  }
  const credential = params.get('Credential')!
  const scope = credential.split('/')
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope.some((s) => s === '')) {
    throw new AuthFailure(
      'incomplete',
      `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${credential}'`,
    )
  }
  const [accessKeyId, date, region, service] = scope as [string, string, string, string]
  return {accessKeyId, date, region, service, signedHeaders: params.get('SignedHeaders')!.split(';'), signature: params.get('Signature')!}
}

/**
 * Verify a request's SigV4 Authorization header. Returns the credential that signed it; throws
 * AuthFailure otherwise. `parsed` (when given) receives the access key id as soon as it is known,
 * so a caller can log who tried even when verification fails.
 */
export function verifySigV4<C extends SigningCredential>(
  req: ReceivedRequest,
  opts: VerifyOptions<C>,
  parsed: {accessKeyId?: string} = {},
): C {
  const headers = headerValues(req.rawHeaders)
  const auth = headers.get('authorization')?.[0]
  if (auth === undefined) throw new AuthFailure('missing', 'Request is missing Authentication Token')
  const amzDate = headers.get('x-amz-date')?.[0]
  const httpDate = headers.get('date')?.[0]
  const a = parseAuthorization(auth)
  parsed.accessKeyId = a.accessKeyId
  if (amzDate === undefined && httpDate === undefined) {
    throw new AuthFailure(
      'incomplete',
      `Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=${SIGV4_ALGORITHM}`,
    )
  }
  let requestTime: number | undefined
  let longDate: string
  if (amzDate !== undefined) {
    requestTime = parseAmzDate(amzDate)
    if (requestTime === undefined) {
      throw new AuthFailure(
        'incomplete',
        `Date must be in ISO-8601 'basic format'. Got '${amzDate}'. See http://en.wikipedia.org/wiki/ISO_8601`,
      )
    }
    longDate = amzDate
  } else {
    requestTime = Date.parse(httpDate!)
    if (Number.isNaN(requestTime))
      throw new AuthFailure(
        'incomplete',
        `Date must be in ISO-8601 'basic format'. Got '${httpDate}'. See http://en.wikipedia.org/wiki/ISO_8601`,
      )
    longDate = formatAmzDate(requestTime)
  }
  if (a.date !== longDate.slice(0, 8)) {
    throw new AuthFailure(
      'signature',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${a.date}' != '${longDate.slice(0, 8)}', from '${longDate}'.`,
    )
  }
  if (a.region !== opts.region) throw new AuthFailure('signature', `Credential should be scoped to a valid region, not '${a.region}'. `)
  if (a.service !== opts.service) throw new AuthFailure('signature', `Credential should be scoped to correct service: '${opts.service}'. `)
  if (!a.signedHeaders.includes('host')) {
    throw new AuthFailure('signature', `'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.`)
  }

  const cred = opts.lookup(a.accessKeyId)
  if (!cred) throw new AuthFailure('unrecognized', INVALID_TOKEN)
  const token = headers.get('x-amz-security-token')?.[0]
  if (cred.sessionToken !== undefined ? token !== cred.sessionToken : token !== undefined)
    throw new AuthFailure('unrecognized', INVALID_TOKEN)

  const skew = requestTime - opts.now
  if (skew < -MAX_SKEW_MS) {
    throw new AuthFailure(
      'signature',
      `Signature expired: ${longDate} is now earlier than ${formatAmzDate(opts.now - MAX_SKEW_MS)} (${formatAmzDate(opts.now)} - 5 min.)`,
    )
  }
  if (skew > MAX_SKEW_MS) {
    throw new AuthFailure(
      'signature',
      `Signature not yet current: ${longDate} is still later than ${formatAmzDate(opts.now + MAX_SKEW_MS)} (${formatAmzDate(opts.now)} + 5 min.)`,
    )
  }

  const scope = `${a.date}/${a.region}/${a.service}/aws4_request`
  const canonical = canonicalRequest(req, a.signedHeaders)
  const toSign = stringToSign(longDate, scope, canonical)
  const expected = createHmac('sha256', signingKey(cred.secretAccessKey, a.date, a.region, a.service))
    .update(toSign, 'utf8')
    .digest()
  const given = /^[0-9a-f]{64}$/.test(a.signature) ? Buffer.from(a.signature, 'hex') : Buffer.alloc(0)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new AuthFailure(
      'signature',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. ' +
        `Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'${canonical}'\n\n` +
        `The String-to-Sign should have been\n'${toSign}'\n`,
    )
  }
  if (cred.expiration !== undefined && opts.now >= cred.expiration) {
    throw new AuthFailure('expired', 'The security token included in the request is expired')
  }
  return cred
}
