/**
 * A local AWS KMS test server that speaks the real KMS wire protocol (awsJson1_1,
 * `X-Amz-Target: TrentService.<Operation>`), so code can be exercised through the real
 * `@aws-sdk/client-kms` over a real socket. Built on the shared AWS core (test/support/aws/):
 * every request's SigV4 signature is verified against the account's access keys.
 *
 * Faithful: request/response shapes and field names, base64 blobs, error bodies
 * (`{"__type", "message"}` + `x-amzn-ErrorType`), HTTP status codes as observed on the wire
 * (400 for client errors, 500 for internal errors), EncryptionContext binding (AAD),
 * key resolution (id / key ARN / alias / alias ARN, region and account checks), key states,
 * SigV4 signatures, credential scope and session tokens (unknown key → UnrecognizedClientException,
 * wrong signature → InvalidSignatureException, expired session → ExpiredTokenException).
 *
 * Not faithful: there are no key policies/grants (only explicit `deny` rules), the ciphertext format
 * is our own, and only a handful of operations exist.
 */
import {createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID} from 'node:crypto'
import {AwsError, type AwsCall, type AwsServerOptions, type RequestContext} from './aws/server.js'
import {AwsJsonServer, type Body, type JsonOperation, optBool, optInt, optString, validationError} from './aws/json.js'
import type {AwsIam} from './aws/iam.js'
import type {Clock} from './clock.js'

export type KmsOperation = 'Encrypt' | 'Decrypt' | 'GenerateDataKey' | 'DescribeKey' | 'CreateKey' | 'CreateAlias'

/** Exception names this server can produce (any other string may be injected with failNext). */
export type KmsExceptionName =
  | 'NotFoundException'
  | 'DisabledException'
  | 'KMSInvalidStateException'
  | 'InvalidCiphertextException'
  | 'IncorrectKeyException'
  | 'AccessDeniedException'
  | 'ThrottlingException'
  | 'ValidationException'
  | 'KMSInternalException'
  | 'KeyUnavailableException'
  | 'DependencyTimeoutException'
  | 'AlreadyExistsException'
  | 'InvalidAliasNameException'
  | 'InvalidKeyUsageException'
  | 'UnsupportedOperationException'
  | 'DryRunOperationException'
  | 'MissingAuthenticationTokenException'
  | 'IncompleteSignatureException'
  | 'InvalidSignatureException'
  | 'UnrecognizedClientException'
  | 'ExpiredTokenException'
  | 'SerializationException'
  | 'UnknownOperationException'

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion'

/**
 * Region, account (`accountId`, or a shared `iam`), latency, and the access keys the account
 * accepts: `credentials` (accessKeyId → secretAccessKey) with `principals` (accessKeyId → ARN).
 */
export type KmsServerOptions = AwsServerOptions

interface KmsCallFields {
  /** Resolved key id (uuid) when the request identified a known key, else the raw KeyId sent (if any). */
  keyId: string
  /** KeyId exactly as sent in the request (for Decrypt without KeyId: undefined). */
  requestedKeyId: string
  encryptionContext: Record<string, string>
}

export type KmsCall = AwsCall & Partial<KmsCallFields>

export interface DenyRule {
  /** Operation name (the IAM action is `kms:<action>`), or '*' for all. */
  action: KmsOperation | '*'
  /** Key id, key ARN, alias name or alias ARN; resolved when the rule is evaluated. Omit = any key. */
  keyId?: string
  /** Omit = any caller. */
  accessKeyId?: string
}

export interface FailNextOptions {
  operation?: KmsOperation
  message?: string
  /** Override the HTTP status (default: what KMS uses for that exception). */
  status?: number
}

export interface CreateKeyOptions {
  description?: string
  alias?: string
  enabled?: boolean
}

export interface CreatedKey {
  keyId: string
  arn: string
  aliasArn?: string
}

export interface KmsServerHandle {
  readonly url: string
  readonly region: string
  readonly accountId: string
  /** The account's identities (add access keys, share with the STS server). */
  readonly iam: AwsIam
  readonly clock: Clock
  /** Per-call latency in ms, applied before processing (errors included). Settable. */
  latencyMs: number
  readonly calls: KmsCall[]
  readonly inFlight: number
  readonly maxInFlight: number
  count(operation?: string): number
  /** Clear `calls` and reset `maxInFlight` to the current `inFlight`. */
  resetStats(): void
  createKey(opts?: CreateKeyOptions): CreatedKey
  createAlias(aliasName: string, keyId: string): string
  /** Re-points an existing alias at another key, as UpdateAlias does (same account and region). */
  updateAlias(aliasName: string, keyId: string): void
  disableKey(keyId: string): void
  enableKey(keyId: string): void
  scheduleDeletion(keyId: string, pendingWindowInDays?: number): void
  keyState(keyId: string): KeyState
  /** Add an explicit deny; returns a function that removes it. */
  deny(rule: DenyRule): () => void
  clearDenies(): void
  /** The next n matching requests (after auth, before the operation runs) fail with the exception. */
  failNext(n: number, exceptionName: KmsExceptionName | (string & {}), opts?: FailNextOptions): void
  clearFaults(): void
  /** Token-bucket rate limit answered with ThrottlingException; returns a function that removes it. */
  throttle(opts: {perSecond: number; burst?: number; operation?: KmsOperation; accessKeyId?: string}): () => void
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------------

/**
 * Status codes as KMS puts them on the wire. NB: the Smithy model bundled with the SDK carries
 * httpError traits of 404 (NotFound) / 409 (Disabled, KMSInvalidState, AlreadyExists), but
 * real KMS responses are 400 ("Status Code: 400; Error Code: NotFoundException" in SDK logs).
 * The SDK identifies errors by `__type`, not by status, so only $metadata.httpStatusCode differs.
 */
const STATUS: Record<string, number> = {
  KMSInternalException: 500,
  KeyUnavailableException: 500,
  DependencyTimeoutException: 500,
  InternalFailure: 500,
  ServiceUnavailableException: 503,
  DryRunOperationException: 412,
}

const DEFAULT_MESSAGE: Record<string, string | undefined> = {
  ThrottlingException: 'You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.',
  KMSInternalException: 'The request was rejected because an internal exception occurred. The request can be retried.',
  KeyUnavailableException: 'The request was rejected because the specified KMS key was not available. You can retry the request.',
  DependencyTimeoutException: 'The system timed out while trying to fulfill the request. You can retry the request.',
  // Real KMS sends InvalidCiphertextException without a message.
  InvalidCiphertextException: undefined,
}

interface Key {
  id: string
  arn: string
  material: Buffer
  materialId: string
  description: string
  state: KeyState
  creationDate: Date
  deletionDate?: Date
  pendingWindowInDays?: number
}

type Ctx = RequestContext<KmsCallFields>

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const ALIAS_RE = /^alias\/[a-zA-Z0-9:/_-]+$/
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

// Ciphertext blob: 'K' 'S' ver(1) | idLen(1) | keyId(ascii) | nonce(12) | tag(16) | ciphertext
const BLOB_MAGIC = Buffer.from([0x4b, 0x53, 0x01])
const NONCE_LEN = 12
const TAG_LEN = 16

function canonicalContext(ctx: Record<string, string> | undefined): Buffer {
  const entries = Object.entries(ctx ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  // Empty and absent contexts are equivalent, as in KMS.
  return entries.length === 0 ? Buffer.alloc(0) : Buffer.from(JSON.stringify(entries), 'utf8')
}

// ---- request-shape helpers (coral validates before business logic) ----------------------------

function optBlob(body: Body, field: string): Buffer | undefined {
  const s = optString(body, field)
  if (s === undefined) return undefined
  if (!B64_RE.test(s)) throw new AwsError('SerializationException', `Base64 encoded value expected for ${field}`)
  return Buffer.from(s, 'base64')
}

function optContext(body: Body): Record<string, string> | undefined {
  const v = body.EncryptionContext
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'object' || Array.isArray(v)) throw new AwsError('SerializationException', 'Expected a map for EncryptionContext')
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string') throw new AwsError('SerializationException', 'EncryptionContext values must be strings')
    out[k] = val
  }
  return out
}

function checkGrantTokens(body: Body): void {
  const v = body.GrantTokens
  if (v === undefined || v === null) return
  if (!Array.isArray(v) || v.some((t) => typeof t !== 'string'))
    throw new AwsError('SerializationException', 'Expected a list of strings for GrantTokens')
  if (v.length > 10)
    throw validationError(`Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10`)
}

function keyIdField(body: Body, field = 'KeyId', wire = 'keyId'): string {
  const v = optString(body, field)
  if (v === undefined) throw validationError(`Value null at '${wire}' failed to satisfy constraint: Member must not be null`)
  if (v.length < 1)
    throw validationError(`Value at '${wire}' failed to satisfy constraint: Member must have length greater than or equal to 1`)
  if (v.length > 2048)
    throw validationError(`Value at '${wire}' failed to satisfy constraint: Member must have length less than or equal to 2048`)
  return v
}

// ---------------------------------------------------------------------------------------------

class KmsTestServer extends AwsJsonServer<KmsCallFields> implements KmsServerHandle {
  declare readonly calls: KmsCall[]
  protected readonly service = 'kms'
  protected readonly targetPrefix = 'TrentService.'
  protected readonly errorNamespace = 'com.amazon.kms'
  protected override readonly statuses = STATUS
  protected readonly internalErrorType = 'KMSInternalException'
  protected readonly operations: Record<KmsOperation, JsonOperation<KmsCallFields>> = {
    Encrypt: (ctx, body) => this.opEncrypt(ctx, body),
    Decrypt: (ctx, body) => this.opDecrypt(ctx, body),
    GenerateDataKey: (ctx, body) => this.opGenerateDataKey(ctx, body),
    DescribeKey: (ctx, body) => this.opDescribeKey(ctx, body),
    CreateKey: (ctx, body) => this.opCreateKey(ctx, body),
    CreateAlias: (ctx, body) => this.opCreateAlias(ctx, body),
  }

  private readonly keys = new Map<string, Key>()
  private readonly aliases = new Map<string, string>() // alias name -> key id
  private denies: DenyRule[] = []

  protected override defaultMessage(type: string): string | undefined {
    return type in DEFAULT_MESSAGE ? DEFAULT_MESSAGE[type] : `Injected ${type}`
  }

  protected override throttlingError(): AwsError {
    return new AwsError('ThrottlingException', DEFAULT_MESSAGE.ThrottlingException)
  }

  /** An injected fault still records which key and context the request named. */
  protected override onFault(ctx: Ctx, b: Body): void {
    ctx.record.requestedKeyId = typeof b.KeyId === 'string' ? b.KeyId : undefined
    if (b.EncryptionContext && typeof b.EncryptionContext === 'object')
      ctx.record.encryptionContext = b.EncryptionContext as Record<string, string>
  }

  protected override recordFields(ctx: Ctx): Partial<KmsCallFields> {
    const r = ctx.record
    return {keyId: r.keyId ?? r.requestedKeyId, requestedKeyId: r.requestedKeyId, encryptionContext: r.encryptionContext}
  }

  // ---- handle API ----

  createKey(opts: CreateKeyOptions = {}): CreatedKey {
    const key = this.newKey(opts.description ?? '')
    if (opts.enabled === false) key.state = 'Disabled'
    const created: CreatedKey = {keyId: key.id, arn: key.arn}
    if (opts.alias !== undefined) created.aliasArn = this.createAlias(opts.alias, key.id)
    return created
  }

  createAlias(aliasName: string, keyId: string): string {
    const name = aliasName.startsWith('alias/') ? aliasName : `alias/${aliasName}`
    if (!ALIAS_RE.test(name)) throw new Error(`invalid alias name ${name}`)
    if (this.aliases.has(name)) throw new Error(`alias ${name} already exists`)
    this.aliases.set(name, this.mustKey(keyId).id)
    return this.aliasArn(name)
  }

  updateAlias(aliasName: string, keyId: string): void {
    const name = aliasName.startsWith('alias/') ? aliasName : `alias/${aliasName}`
    if (!this.aliases.has(name)) throw new Error(`alias ${name} does not exist`)
    this.aliases.set(name, this.mustKey(keyId).id)
  }

  disableKey(keyId: string): void {
    const key = this.mustKey(keyId)
    if (key.state === 'PendingDeletion') throw new Error(`${key.arn} is pending deletion`)
    key.state = 'Disabled'
  }

  enableKey(keyId: string): void {
    const key = this.mustKey(keyId)
    if (key.state === 'PendingDeletion') throw new Error(`${key.arn} is pending deletion`)
    key.state = 'Enabled'
  }

  scheduleDeletion(keyId: string, pendingWindowInDays = 30): void {
    const key = this.mustKey(keyId)
    key.state = 'PendingDeletion'
    key.pendingWindowInDays = pendingWindowInDays
    key.deletionDate = new Date(this.clock.now() + pendingWindowInDays * 86_400_000)
  }

  keyState(keyId: string): KeyState {
    return this.mustKey(keyId).state
  }

  deny(rule: DenyRule): () => void {
    const r = {...rule}
    this.denies.push(r)
    return () => {
      this.denies = this.denies.filter((d) => d !== r)
    }
  }

  clearDenies(): void {
    this.denies = []
  }

  // ---- internals ----

  private newKey(description: string): Key {
    const id = randomUUID()
    const material = randomBytes(32)
    const key: Key = {
      id,
      arn: `arn:aws:kms:${this.region}:${this.accountId}:key/${id}`,
      material,
      materialId: createHash('sha256').update(material).digest('hex'),
      description,
      state: 'Enabled',
      creationDate: new Date(this.clock.now()),
    }
    this.keys.set(id, key)
    return key
  }

  /** For the test-facing API: accepts id, key ARN, alias name or alias ARN; throws plain Errors. */
  private mustKey(ref: string): Key {
    try {
      return this.resolveKey(ref)
    } catch (e) {
      throw new Error(`kms-server: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private aliasArn(name: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:${name}`
  }

  private keyArn(id: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:key/${id}`
  }

  /** Resolve a KeyId the way KMS does: key id, key ARN, alias name or alias ARN. */
  private resolveKey(ref: string): Key {
    if (ref.startsWith('arn:')) {
      const m = /^arn:([^:]+):kms:([^:]*):([^:]*):(key|alias)\/(.+)$/.exec(ref)
      if (!m) throw new AwsError('NotFoundException', 'Invalid arn')
      const [, , region, account, kind, rest] = m as unknown as [string, string, string, string, string, string]
      if (region !== this.region) throw new AwsError('NotFoundException', `Invalid arn ${region}`)
      if (kind === 'alias') {
        const keyId = account === this.accountId ? this.aliases.get(`alias/${rest}`) : undefined
        const key = keyId !== undefined ? this.keys.get(keyId) : undefined
        if (!key) throw new AwsError('NotFoundException', `Alias ${ref} is not found.`)
        return key
      }
      const key = account === this.accountId ? this.keys.get(rest) : undefined
      if (!key) throw new AwsError('NotFoundException', `Key '${ref}' does not exist`)
      return key
    }
    if (ref.startsWith('alias/')) {
      const keyId = this.aliases.get(ref)
      const key = keyId !== undefined ? this.keys.get(keyId) : undefined
      if (!key) throw new AwsError('NotFoundException', `Alias ${this.aliasArn(ref)} is not found.`)
      return key
    }
    if (!UUID_RE.test(ref)) throw new AwsError('NotFoundException', `Invalid keyId ${ref}`)
    const key = this.keys.get(ref.toLowerCase())
    if (!key) throw new AwsError('NotFoundException', `Key '${this.keyArn(ref)}' does not exist`)
    return key
  }

  private authorize(ctx: Ctx, action: KmsOperation, key: Key | undefined): void {
    for (const rule of this.denies) {
      if (rule.action !== '*' && rule.action !== action) continue
      if (rule.accessKeyId !== undefined && rule.accessKeyId !== ctx.accessKeyId) continue
      if (rule.keyId !== undefined) {
        if (!key) continue
        let ruleKey: Key | undefined
        try {
          ruleKey = this.resolveKey(rule.keyId)
        } catch {
          ruleKey = undefined
        }
        if (ruleKey?.id !== key.id) continue
      }
      const principal = this.principalArn(ctx)
      const resource = key ? key.arn : '*'
      throw new AwsError(
        'AccessDeniedException',
        `User: ${principal} is not authorized to perform: kms:${action} on resource: ${resource} because no identity-based policy allows the kms:${action} action`,
      )
    }
  }

  private checkUsable(key: Key): void {
    if (key.state === 'Disabled') throw new AwsError('DisabledException', `${key.arn} is disabled.`)
    if (key.state === 'PendingDeletion') throw new AwsError('KMSInvalidStateException', `${key.arn} is pending deletion.`)
  }

  private seal(key: Key, plaintext: Buffer, context: Record<string, string> | undefined): Buffer {
    const id = Buffer.from(key.id, 'ascii')
    const head = Buffer.concat([BLOB_MAGIC, Buffer.from([id.length]), id])
    const nonce = randomBytes(NONCE_LEN)
    const cipher = createCipheriv('aes-256-gcm', key.material, nonce)
    cipher.setAAD(Buffer.concat([head, canonicalContext(context)]))
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
    return Buffer.concat([head, nonce, cipher.getAuthTag(), ct])
  }

  /** Parse a blob's header. Anything we did not produce → InvalidCiphertextException. */
  private parseBlob(blob: Buffer): {keyId: string; head: Buffer; nonce: Buffer; tag: Buffer; ct: Buffer} {
    const bad = () => new AwsError('InvalidCiphertextException')
    if (blob.length < BLOB_MAGIC.length + 1 || !blob.subarray(0, BLOB_MAGIC.length).equals(BLOB_MAGIC)) throw bad()
    const idLen = blob[BLOB_MAGIC.length]!
    const headLen = BLOB_MAGIC.length + 1 + idLen
    if (blob.length < headLen + NONCE_LEN + TAG_LEN) throw bad()
    const keyId = blob.subarray(BLOB_MAGIC.length + 1, headLen).toString('ascii')
    if (!UUID_RE.test(keyId)) throw bad()
    return {
      keyId,
      head: blob.subarray(0, headLen),
      nonce: blob.subarray(headLen, headLen + NONCE_LEN),
      tag: blob.subarray(headLen + NONCE_LEN, headLen + NONCE_LEN + TAG_LEN),
      ct: blob.subarray(headLen + NONCE_LEN + TAG_LEN),
    }
  }

  private open(key: Key, parts: ReturnType<KmsTestServer['parseBlob']>, context: Record<string, string> | undefined): Buffer {
    try {
      const d = createDecipheriv('aes-256-gcm', key.material, parts.nonce)
      d.setAAD(Buffer.concat([parts.head, canonicalContext(context)]))
      d.setAuthTag(parts.tag)
      return Buffer.concat([d.update(parts.ct), d.final()])
    } catch {
      throw new AwsError('InvalidCiphertextException')
    }
  }

  private keyMetadata(key: Key): Record<string, unknown> {
    const md: Record<string, unknown> = {
      AWSAccountId: this.accountId,
      KeyId: key.id,
      Arn: key.arn,
      CreationDate: key.creationDate.getTime() / 1000,
      Enabled: key.state === 'Enabled',
      Description: key.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: key.state,
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      MultiRegion: false,
      CurrentKeyMaterialId: key.materialId,
    }
    if (key.deletionDate) md.DeletionDate = key.deletionDate.getTime() / 1000
    if (key.pendingWindowInDays !== undefined) md.PendingDeletionWindowInDays = key.pendingWindowInDays
    return md
  }

  private checkAlgorithm(body: Body): void {
    const alg = optString(body, 'EncryptionAlgorithm')
    if (alg === undefined || alg === 'SYMMETRIC_DEFAULT') return
    if (['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256', 'SM2PKE'].includes(alg)) {
      throw new AwsError('InvalidKeyUsageException', `The requested encryption algorithm ${alg} is not supported by this KMS key.`)
    }
    throw validationError(
      `Value '${alg}' at 'encryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]`,
    )
  }

  private rejectUnsupported(body: Body, ...fields: string[]): void {
    for (const f of fields) {
      if (body[f] !== undefined && body[f] !== null) {
        throw new AwsError('UnsupportedOperationException', `kms-server: ${f} is not supported by the local test server`)
      }
    }
  }

  private dryRun(body: Body): void {
    if (optBool(body, 'DryRun') === true) {
      throw new AwsError('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.')
    }
  }

  // ---- operations ----

  private opEncrypt(ctx: Ctx, body: Body): Body {
    const keyRef = keyIdField(body)
    ctx.record.requestedKeyId = keyRef
    const plaintext = optBlob(body, 'Plaintext')
    const context = optContext(body)
    ctx.record.encryptionContext = context
    checkGrantTokens(body)
    if (plaintext === undefined) throw validationError(`Value null at 'plaintext' failed to satisfy constraint: Member must not be null`)
    if (plaintext.length < 1)
      throw validationError(`Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1`)
    if (plaintext.length > 4096)
      throw validationError(`Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096`)
    const key = this.resolveKey(keyRef)
    ctx.record.keyId = key.id
    this.authorize(ctx, 'Encrypt', key)
    this.checkUsable(key)
    this.checkAlgorithm(body)
    this.dryRun(body)
    return {
      CiphertextBlob: this.seal(key, plaintext, context).toString('base64'),
      KeyId: key.arn,
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
    }
  }

  private opDecrypt(ctx: Ctx, body: Body): Body {
    const blob = optBlob(body, 'CiphertextBlob')
    const context = optContext(body)
    ctx.record.encryptionContext = context
    const keyRef = optString(body, 'KeyId')
    ctx.record.requestedKeyId = keyRef
    checkGrantTokens(body)
    this.rejectUnsupported(body, 'Recipient', 'DryRunModifiers')
    if (blob === undefined) throw validationError(`Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null`)
    if (blob.length < 1)
      throw validationError(`Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length greater than or equal to 1`)
    if (blob.length > 6144)
      throw validationError(`Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less than or equal to 6144`)
    if (keyRef !== undefined && (keyRef.length < 1 || keyRef.length > 2048)) {
      throw validationError(`Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048`)
    }
    const requested = keyRef !== undefined ? this.resolveKey(keyRef) : undefined
    if (requested) ctx.record.keyId = requested.id
    const parts = this.parseBlob(blob)
    const key = this.keys.get(parts.keyId)
    if (!key) throw new AwsError('InvalidCiphertextException')
    ctx.record.keyId = key.id
    if (requested && requested.id !== key.id) {
      throw new AwsError(
        'IncorrectKeyException',
        'The key ID in the request does not identify a KMS key that can perform this operation. The KeyId in a Decrypt request must identify the KMS key that was used to encrypt the ciphertext.',
      )
    }
    this.authorize(ctx, 'Decrypt', key)
    this.checkUsable(key)
    this.checkAlgorithm(body)
    const plaintext = this.open(key, parts, context)
    this.dryRun(body)
    return {
      KeyId: key.arn,
      Plaintext: plaintext.toString('base64'),
      EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      KeyMaterialId: key.materialId,
    }
  }

  private opGenerateDataKey(ctx: Ctx, body: Body): Body {
    const keyRef = keyIdField(body)
    ctx.record.requestedKeyId = keyRef
    const context = optContext(body)
    ctx.record.encryptionContext = context
    const numberOfBytes = optInt(body, 'NumberOfBytes')
    const keySpec = optString(body, 'KeySpec')
    checkGrantTokens(body)
    this.rejectUnsupported(body, 'Recipient')
    if (keySpec !== undefined && keySpec !== 'AES_256' && keySpec !== 'AES_128') {
      throw validationError(
        `Value '${keySpec}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`,
      )
    }
    if (numberOfBytes !== undefined && (numberOfBytes < 1 || numberOfBytes > 1024)) {
      throw validationError(
        `Value '${numberOfBytes}' at 'numberOfBytes' failed to satisfy constraint: Member must have value ${numberOfBytes < 1 ? 'greater than or equal to 1' : 'less than or equal to 1024'}`,
      )
    }
    if ((numberOfBytes === undefined) === (keySpec === undefined)) {
      throw new AwsError('ValidationException', 'Please specify either number of bytes or key spec.')
    }
    const key = this.resolveKey(keyRef)
    ctx.record.keyId = key.id
    this.authorize(ctx, 'GenerateDataKey', key)
    this.checkUsable(key)
    this.dryRun(body)
    const size = numberOfBytes ?? (keySpec === 'AES_128' ? 16 : 32)
    const plaintext = randomBytes(size)
    return {
      CiphertextBlob: this.seal(key, plaintext, context).toString('base64'),
      Plaintext: plaintext.toString('base64'),
      KeyId: key.arn,
      KeyMaterialId: key.materialId,
    }
  }

  private opDescribeKey(ctx: Ctx, body: Body): Body {
    const keyRef = keyIdField(body)
    ctx.record.requestedKeyId = keyRef
    checkGrantTokens(body)
    const key = this.resolveKey(keyRef)
    ctx.record.keyId = key.id
    this.authorize(ctx, 'DescribeKey', key)
    return {KeyMetadata: this.keyMetadata(key)}
  }

  private opCreateKey(ctx: Ctx, body: Body): Body {
    const description = optString(body, 'Description') ?? ''
    if (description.length > 8192)
      throw validationError(`Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192`)
    const usage = optString(body, 'KeyUsage') ?? 'ENCRYPT_DECRYPT'
    const spec = optString(body, 'KeySpec') ?? optString(body, 'CustomerMasterKeySpec') ?? 'SYMMETRIC_DEFAULT'
    const origin = optString(body, 'Origin') ?? 'AWS_KMS'
    this.rejectUnsupported(body, 'CustomKeyStoreId', 'XksKeyId')
    if (usage !== 'ENCRYPT_DECRYPT' || spec !== 'SYMMETRIC_DEFAULT' || origin !== 'AWS_KMS' || optBool(body, 'MultiRegion') === true) {
      throw new AwsError(
        'UnsupportedOperationException',
        'kms-server: only single-region SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys with origin AWS_KMS are supported',
      )
    }
    this.authorize(ctx, 'CreateKey', undefined)
    const key = this.newKey(description)
    ctx.record.keyId = key.id
    return {KeyMetadata: this.keyMetadata(key)}
  }

  private opCreateAlias(ctx: Ctx, body: Body): Body {
    const name = optString(body, 'AliasName')
    const target = keyIdField(body, 'TargetKeyId', 'targetKeyId')
    ctx.record.requestedKeyId = target
    if (name === undefined) throw validationError(`Value null at 'aliasName' failed to satisfy constraint: Member must not be null`)
    if (name.length < 1 || name.length > 256 || !/^[a-zA-Z0-9:/_-]+$/.test(name)) {
      throw validationError(
        `Value '${name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$`,
      )
    }
    if (!name.startsWith('alias/') || name === 'alias/')
      throw new AwsError(
        'InvalidAliasNameException',
        'Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html',
      )
    if (name.startsWith('alias/aws/'))
      throw new AwsError(
        'InvalidAliasNameException',
        `Alias must not begin with 'alias/aws/'. Aliases that begin with 'alias/aws/' are reserved for AWS managed keys.`,
      )
    if (target.startsWith('alias/') || /:alias\//.test(target)) {
      throw new AwsError('NotFoundException', `Invalid keyId ${target}`)
    }
    const key = this.resolveKey(target)
    ctx.record.keyId = key.id
    this.authorize(ctx, 'CreateAlias', key)
    if (key.state === 'PendingDeletion') throw new AwsError('KMSInvalidStateException', `${key.arn} is pending deletion.`)
    if (this.aliases.has(name)) throw new AwsError('AlreadyExistsException', `An alias with the name ${this.aliasArn(name)} already exists`)
    this.aliases.set(name, key.id)
    return {}
  }
}

/** Start a KMS test server on 127.0.0.1 with a random port. */
export async function startKmsServer(opts: KmsServerOptions = {}): Promise<KmsServerHandle> {
  return new KmsTestServer(opts).listen()
}
