/**
 * AWS KMS (`awskms:<key ARN or alias ARN>`). The data key is wrapped with one KMS Encrypt call per
 * Secret and unwrapped with one Decrypt call, both with the Secret's binding as the
 * EncryptionContext (`KeyBinding.context`, which the envelope computes: `kseal:scope`,
 * `kseal:namespace`, `kseal:name`; parts the scope does not bind are left out), so KMS itself refuses a wrapped key moved to another Secret and CloudTrail names
 * the Secret that was opened.
 *
 * The AWS SDK is imported only when the first KMS call is made. Everything else comes from the
 * injected BackendContext: the region from the ARN; credentials from `AWS_ACCESS_KEY_ID` /
 * `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, or `AWS_PROFILE`, or else the SDK's standard chain
 * (SSO, web identity, container and instance roles); the endpoint from `AWS_ENDPOINT_URL_KMS` or
 * `AWS_ENDPOINT_URL`. Calls are capped per run
 * (`KSEAL_KMS_CONCURRENCY`, default 16), time out (`KSEAL_KMS_TIMEOUT` seconds per attempt) and are
 * retried with backoff by the SDK's standard retry strategy (`AWS_MAX_ATTEMPTS`, default 3).
 */
import type {KMSClient, KMSClientConfig} from '@aws-sdk/client-kms'
import {KsealError} from '../src/core/errors.js'
import {Limiter} from '../src/core/limit.js'
import type {Backend, BackendContext, Identity, KeyBinding, Recipient, RecipientEntry} from './types.js'

export const NAME = 'awskms'
export const DEFAULT_CONCURRENCY = 16
const MAX_CONCURRENCY = 256
const DEFAULT_TIMEOUT_S = 20
const DEFAULT_CONNECT_TIMEOUT_S = 5
const DATA_KEY_BYTES = 32

type Env = Record<string, string | undefined>
type Sdk = typeof import('@aws-sdk/client-kms')

/** A parsed KMS key or alias ARN. */
export interface KmsArn {
  arn: string
  partition: string
  region: string
  account: string
  /** `key/<id>` or `alias/<name>`. */
  resource: string
  alias: boolean
}

const ARN_RE = /^arn:(aws[a-z-]*):kms:([a-z]{2}(?:-[a-z]+)+-\d+):(\d{12}):((key)\/[A-Za-z0-9-]{1,256}|(alias)\/[A-Za-z0-9:/_-]{1,250})$/

export function parseKmsArn(s: string): KmsArn | null {
  const m = ARN_RE.exec(s)
  if (!m) return null
  return {arn: s, partition: m[1], region: m[2], account: m[3], resource: m[4], alias: m[6] === 'alias'}
}

function recipientArn(rest: string): KmsArn {
  const arn = parseKmsArn(rest)
  if (!arn) {
    throw new KsealError(
      'ERR_USAGE',
      `awskms:${rest}: expected a KMS key or alias ARN, e.g. awskms:arn:aws:kms:eu-west-1:111122223333:key/<key id> or awskms:arn:aws:kms:eu-west-1:111122223333:alias/<name> (the region comes from the ARN)`,
    )
  }
  return arn
}

/** Tunables read from the (injected) environment. Invalid values are usage errors. */
export interface KmsSettings {
  concurrency: number
  timeoutMs: number
  connectTimeoutMs: number
  maxAttempts?: number
  endpoint?: string
}

export function kmsSettings(env: Env): KmsSettings {
  const concurrency = intVar(env, 'KSEAL_KMS_CONCURRENCY', 1, MAX_CONCURRENCY) ?? DEFAULT_CONCURRENCY
  const timeoutS = numVar(env, 'KSEAL_KMS_TIMEOUT') ?? DEFAULT_TIMEOUT_S
  const maxAttempts = intVar(env, 'AWS_MAX_ATTEMPTS', 1, 20)
  const endpoint = env.AWS_ENDPOINT_URL_KMS || env.AWS_ENDPOINT_URL || undefined
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint)) {
    throw new KsealError(
      'ERR_USAGE',
      `${env.AWS_ENDPOINT_URL_KMS ? 'AWS_ENDPOINT_URL_KMS' : 'AWS_ENDPOINT_URL'} must be an http(s) URL, e.g. http://localhost:4566`,
    )
  }
  return {
    concurrency,
    timeoutMs: Math.round(timeoutS * 1000),
    connectTimeoutMs: Math.round(Math.min(timeoutS, DEFAULT_CONNECT_TIMEOUT_S) * 1000),
    maxAttempts,
    endpoint,
  }
}

function intVar(env: Env, name: string, min: number, max: number): number | undefined {
  const v = env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new KsealError('ERR_USAGE', `${name} must be a whole number from ${min} to ${max} (got "${v}")`)
  return n
}

function numVar(env: Env, name: string): number | undefined {
  const v = env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0 || n > 3600)
    throw new KsealError('ERR_USAGE', `${name} must be a number of seconds, e.g. 10 or 0.5 (got "${v}")`)
  return n
}

let sdkLoading: Promise<Sdk> | undefined

/** The AWS SDK, imported on first use only. */
function loadSdk(): Promise<Sdk> {
  // The SDK warns on every run under Node 20 about its own future support window; kseal supports
  // Node 20, so that note is noise on a CLI's stderr. An explicit setting is left as it is.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  sdkLoading ??= import('@aws-sdk/client-kms')
  return sdkLoading
}

type Operation = 'Encrypt' | 'Decrypt'

interface CallInfo {
  op: Operation
  arn: string
  region: string
}

export class AwsKmsRecipient implements Recipient {
  readonly backend = NAME
  readonly kid: string
  readonly uri: string
  constructor(
    private readonly kms: AwsKmsBackend,
    private readonly key: KmsArn,
    private readonly ctx: BackendContext,
  ) {
    this.kid = key.arn
    this.uri = `${NAME}:${key.arn}`
  }

  /**
   * One Encrypt call. The key id is the ARN as given; for an alias ARN the entry also records the
   * key ARN KMS used (`key`), which Decrypt then names, so re-pointing the alias later does not
   * strand the Secrets wrapped before.
   */
  async wrap(dataKey: Uint8Array, binding: KeyBinding): Promise<RecipientEntry> {
    const out = await this.kms.call(this.ctx, {op: 'Encrypt', arn: this.key.arn, region: this.key.region}, (sdk, client) =>
      client.send(new sdk.EncryptCommand({KeyId: this.key.arn, Plaintext: dataKey, EncryptionContext: {...binding.context}})),
    )
    if (!out.CiphertextBlob?.length) throw new KsealError('ERR_BACKEND', `AWS KMS returned no ciphertext for ${this.key.arn}`)
    const entry: KmsEntry = {backend: NAME, kid: this.key.arn, wrapped: Buffer.from(out.CiphertextBlob).toString('base64')}
    const used = out.KeyId ? parseKmsArn(out.KeyId) : null
    if (this.key.alias && used && !used.alias) entry.key = used.arn
    return entry
  }
}

/** An awskms entry: for an alias ARN `kid`, `key` is the key ARN KMS used. */
type KmsEntry = RecipientEntry & {key?: string}

/**
 * KMS credentials. Which key kseal agrees to call is the defence against a file that names a key of
 * the writer's choice (a MAC does not help there: whoever wraps a new data key under their own key
 * can compute a valid MAC with it):
 *
 * - `--key awskms:<alias ARN>` opens only entries whose `kid` is that alias, and calls Decrypt with the
 *   alias itself, so KMS checks that the data key was wrapped under the key the alias points to now.
 *   An entry wrapped before the alias was re-pointed names its key in `key`: add `--key
 *   awskms:<that key ARN>` to open it (the error says so), or rotate it to the alias's new key.
 * - `--key awskms:<key ARN>` opens only entries of that key (as `kid`, or as the `key` recorded for an
 *   alias) and calls that key.
 * - Ambient credentials (no `--key`) call the key the entry names — what IAM allows them to call.
 *   Scope their kms:Decrypt to your keys (never `Resource: "*"`), or pass `--key`.
 *
 * In every case the entry must be consistent before any call: `key`, when present, is a key ARN (not
 * an alias) of an alias `kid`, in the same partition, account and region as the alias.
 */
export class AwsKmsIdentity implements Identity {
  readonly backend = NAME
  readonly kid = '*'
  private readonly onlyArn?: KmsArn
  constructor(
    private readonly kms: AwsKmsBackend,
    private readonly ctx: BackendContext,
    readonly source: string,
    private readonly only?: string,
  ) {
    this.onlyArn = only === undefined ? undefined : (parseKmsArn(only) ?? undefined)
  }

  async unwrap(entry: KmsEntry, binding: KeyBinding): Promise<Uint8Array | null> {
    if (entry.backend !== NAME) return null
    const kid = parseKmsArn(entry.kid)
    if (!kid) throw new KsealError('ERR_INTEGRITY', 'malformed kseal envelope: an awskms recipient has no valid key ARN')
    const recorded = checkRecordedKey(entry, kid)
    let call: KmsArn
    if (this.onlyArn?.alias) {
      if (entry.kid !== this.onlyArn.arn) return null
      call = this.onlyArn
    } else if (this.onlyArn) {
      if (entry.kid !== this.onlyArn.arn && recorded?.arn !== this.onlyArn.arn) return null
      call = this.onlyArn
    } else {
      call = recorded ?? kid
    }
    const blob = Buffer.from(entry.wrapped, 'base64')
    if (blob.length === 0 || blob.toString('base64') !== entry.wrapped.replace(/\s+/g, '')) {
      throw new KsealError('ERR_INTEGRITY', `malformed kseal envelope: the awskms recipient ${kid.arn} has no valid wrapped key`)
    }
    let out
    try {
      out = await this.kms.call(this.ctx, {op: 'Decrypt', arn: call.arn, region: call.region}, (sdk, client) =>
        client.send(new sdk.DecryptCommand({KeyId: call.arn, CiphertextBlob: blob, EncryptionContext: {...binding.context}})),
      )
    } catch (e) {
      if (call.alias && (e as KsealError).code === 'ERR_DECRYPT' && /not wrapped with/.test((e as Error).message)) {
        throw new KsealError(
          'ERR_DECRYPT',
          `AWS KMS refused the data key: it was not wrapped with the key ${call.arn} points to now` +
            (recorded
              ? ` (the entry names ${recorded.arn}; if the alias was re-pointed since, add --key awskms:${recorded.arn}, or rotate the Secret to the alias's new key)`
              : ''),
        )
      }
      throw e
    }
    if (out.Plaintext?.length !== DATA_KEY_BYTES) {
      throw new KsealError('ERR_DECRYPT', `AWS KMS key ${call.arn} returned something that is not a kseal data key`)
    }
    return out.Plaintext
  }
}

/**
 * The key recorded for an alias entry, checked before any call: a key ARN (not an alias) in the same
 * partition, account and region as the alias. A `key` on an entry whose kid is a key ARN is refused.
 */
function checkRecordedKey(entry: KmsEntry, kid: KmsArn): KmsArn | undefined {
  if (entry.key === undefined) return undefined
  const key = parseKmsArn(entry.key)
  const bad = (why: string) =>
    new KsealError('ERR_INTEGRITY', `the awskms recipient ${kid.arn} ${why}: refusing to call it (was the entry altered?)`)
  if (!key || key.alias) throw bad('records a key that is not a KMS key ARN')
  if (!kid.alias) throw bad(`names key ${key.arn} besides its own key ARN`)
  if (key.partition !== kid.partition || key.account !== kid.account || key.region !== kid.region) {
    throw bad(`records key ${key.arn}, which is not in the alias's account and region`)
  }
  return key
}

export class AwsKmsBackend implements Backend {
  readonly name = NAME
  private readonly clients = new Map<string, Promise<KMSClient>>()
  private limiter?: Limiter
  private settings?: KmsSettings

  async recipient(rest: string, ctx: BackendContext): Promise<Recipient> {
    return new AwsKmsRecipient(this, recipientArn(rest), ctx)
  }

  /** `--key awskms:<ARN>`: use KMS, for entries of that key or alias ARN only. */
  async identities(rest: string, ctx: BackendContext): Promise<Identity[]> {
    const key = recipientArn(rest)
    return [new AwsKmsIdentity(this, ctx, `${NAME}:${key.arn}`, key.arn)]
  }

  /** The AWS credentials of the environment, offered for awskms entries when no other key opens them. */
  async ambient(ctx: BackendContext): Promise<Identity[]> {
    return [new AwsKmsIdentity(this, ctx, 'AWS credentials')]
  }

  /** Runs one KMS call under the run-wide cap, with KMS and SDK errors turned into one-line KsealErrors. */
  async call<T>(ctx: BackendContext, info: CallInfo, fn: (sdk: Sdk, client: KMSClient) => Promise<T>): Promise<T> {
    const settings = (this.settings ??= kmsSettings(ctx.env))
    this.limiter ??= new Limiter(settings.concurrency)
    const sdk = await loadSdk()
    let client = this.clients.get(info.region)
    if (!client) {
      client = Promise.resolve(new sdk.KMSClient(clientConfig(ctx.env, info.region, settings)))
      this.clients.set(info.region, client)
    }
    const c = await client
    try {
      return await this.limiter.run(() => fn(sdk, c))
    } catch (e) {
      throw kmsError(e, info, settings)
    }
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled(this.clients.values())
    this.clients.clear()
    for (const r of all) if (r.status === 'fulfilled') r.value.destroy()
  }
}

/** The SDK client configuration for one region, from the injected environment only. */
export function clientConfig(env: Env, region: string, s: KmsSettings): KMSClientConfig {
  const cfg: KMSClientConfig = {
    region,
    requestHandler: {connectionTimeout: s.connectTimeoutMs, requestTimeout: s.timeoutMs, throwOnRequestTimeout: true},
    // Resolve the middleware stack once per command type, not on every call: a bulk run makes
    // thousands of the same two calls (measured: ~0.4 → ~0.3 ms of CPU per call).
    cacheMiddleware: true,
  }
  if (s.maxAttempts !== undefined) cfg.maxAttempts = s.maxAttempts
  if (s.endpoint) cfg.endpoint = s.endpoint
  if (env.AWS_RETRY_MODE) cfg.retryMode = env.AWS_RETRY_MODE
  // As the SDK's own chain does: a named profile wins over keys in the environment.
  if (env.AWS_PROFILE) {
    cfg.profile = env.AWS_PROFILE
  } else if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    cfg.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? {sessionToken: env.AWS_SESSION_TOKEN} : {}),
    }
  }
  return cfg
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  ECONNABORTED: 'connection aborted',
}

/**
 * Turns what the SDK throws into one line a user can act on. The request (and so the data key) is
 * never part of it: only the error's name, the key, the action and AWS's own message.
 */
export function kmsError(err: unknown, info: CallInfo, s: KmsSettings): KsealError {
  const e = (err ?? {}) as {name?: string; code?: string; message?: string; $metadata?: {attempts?: number}; $fault?: string}
  const name = e.name ?? ''
  const said = e.message ? ` (AWS KMS: ${oneLine(e.message)})` : ''
  const action = `kms:${info.op}`
  const where = s.endpoint ?? `the AWS KMS endpoint for ${info.region}`
  const backend = (msg: string) => new KsealError('ERR_BACKEND', msg)
  switch (name) {
    case 'AccessDeniedException':
      return backend(`access denied: ${action} on KMS key ${info.arn}${said}`)
    case 'NotFoundException':
      return backend(`KMS key ${info.arn} not found (check the account and the region ${info.region} in the ARN)${said}`)
    case 'DisabledException':
      return backend(`KMS key ${info.arn} is disabled; enable it to ${info.op === 'Decrypt' ? 'decrypt' : 'encrypt'}${said}`)
    case 'KMSInvalidStateException':
      return backend(`KMS key ${info.arn} cannot be used in its current state (pending deletion or import?)${said}`)
    case 'InvalidCiphertextException':
      return new KsealError(
        'ERR_DECRYPT',
        `AWS KMS refused the data key wrapped with ${info.arn}: the recipient entry was altered, or the Secret was moved or renamed (its encryption context no longer matches)`,
      )
    case 'IncorrectKeyException':
      return new KsealError(
        'ERR_DECRYPT',
        `AWS KMS refused the data key: it was not wrapped with ${info.arn} (the recipient entry was altered)`,
      )
    case 'CredentialsProviderError':
      return backend(
        `no AWS credentials for ${action} on ${info.arn}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an IAM role`,
      )
    case 'ThrottlingException':
      return backend(
        `AWS KMS throttled ${action} on ${info.arn} after ${e.$metadata?.attempts ?? 1} attempts; lower KSEAL_KMS_CONCURRENCY or raise AWS_MAX_ATTEMPTS`,
      )
    case 'InvalidSignatureException':
    case 'UnrecognizedClientException':
    case 'InvalidClientTokenId':
    case 'ExpiredTokenException':
    case 'SignatureDoesNotMatch':
      if (/region/i.test(e.message ?? '')) {
        return backend(`wrong region: ${where} does not serve ${info.region}, the region in ${info.arn}${said}`)
      }
      return backend(`AWS rejected the credentials for ${action} on ${info.arn}${said}`)
    case 'TimeoutError':
      return backend(`cannot reach AWS KMS at ${where}: no answer within ${s.timeoutMs / 1000} s (KSEAL_KMS_TIMEOUT)`)
  }
  // A socket error's code, also when it reaches us only as text (errors from another realm get wrapped).
  const net = e.code && NETWORK_CODES[e.code] ? e.code : /\b(E[A-Z]{4,})\b/.exec(e.message ?? '')?.[1]
  if (net && NETWORK_CODES[net]) return backend(`cannot reach AWS KMS at ${where}: ${NETWORK_CODES[net]}`)
  if (e.$fault) return backend(`${action} on ${info.arn} failed: ${name || 'error'}${said}`)
  return backend(`${action} on ${info.arn} failed: ${oneLine(e.message ?? String(err))}`)
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim()
  return line.length > 300 ? line.slice(0, 297) + '...' : line
}

export const backend = (): Backend => new AwsKmsBackend()
