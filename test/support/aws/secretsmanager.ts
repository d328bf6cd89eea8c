/**
 * A local AWS Secrets Manager that speaks the real wire protocol (awsJson1_1,
 * `X-Amz-Target: secretsmanager.<Operation>`, signing name `secretsmanager`), so providers are
 * exercised through the real `@aws-sdk/client-secrets-manager` over a real socket, with every
 * request's SigV4 signature verified (shared core: test/support/aws/).
 *
 * Faithful: GetSecretValue (SecretId as name, full ARN or partial ARN without the random suffix;
 * VersionId, VersionStage with AWSCURRENT / AWSPREVIOUS / custom labels; SecretString or
 * SecretBinary), BatchGetSecretValue (SecretIdList or Filters, per-secret Errors), ListSecrets
 * (Filters name / description / tag-key / tag-value / primary-region / all with AWS's prefix and
 * case rules and `!` negation; values of one filter OR'ed, filters AND'ed; IncludePlannedDeletion;
 * MaxResults / NextToken; SortOrder / SortBy), DescribeSecret; response field names and epoch-second
 * timestamps; staging-label moves (AWSCURRENT moving hands AWSPREVIOUS to the version it left);
 * errors with AWS's codes, messages and status 400 (ResourceNotFoundException,
 * InvalidRequestException for a secret marked for deletion or a stage/version mismatch,
 * DecryptionFailure, AccessDeniedException checked before the secret is looked up, so a caller
 * without access cannot probe for names, ThrottlingException "Rate exceeded",
 * InvalidNextTokenException, ValidationException, InternalServiceError 500).
 *
 * Deliberate simplifications: writes (create, put value, stage moves, tags, delete/restore) are
 * test-side helpers, not SDK operations; there is no KMS (a secret can be marked undecryptable);
 * no resource policies, rotation, replication or version limits; the `all` filter matches
 * words by prefix in name, description and tags; the default sort is CreatedDate descending; the
 * messages of the BatchGetSecretValue argument errors are our wording; filtered listings return
 * full pages unless `listScanLimit` makes them short, as AWS may.
 */
import {randomInt, randomUUID} from 'node:crypto'
import {accessDenied, type AwsDenyRule, DenyTable} from './access.js'
import {
  AwsJsonServer,
  type AwsJsonServerOptions,
  type Body,
  checkLength,
  checkRange,
  epochSeconds,
  type JsonOperation,
  optBool,
  optInt,
  optList,
  optString,
  optStringList,
  requiredString,
  validationError,
} from './json.js'
import {nextToken, page, tokenOffset} from './paging.js'
import {AwsError, type AwsCall, type RequestContext} from './server.js'

export type SecretsManagerOperation = 'GetSecretValue' | 'BatchGetSecretValue' | 'ListSecrets' | 'DescribeSecret'

export interface SecretsManagerCallFields {
  /** SecretId as sent (GetSecretValue, DescribeSecret). */
  secretId: string
  versionId: string
  versionStage: string
  /** SecretIdList as sent (BatchGetSecretValue). */
  secretIds: string[]
  /** Number of secrets (or values) the response carried. */
  returned: number
}

export type SecretsManagerCall = AwsCall & Partial<SecretsManagerCallFields>

export type SecretsManagerServerOptions = AwsJsonServerOptions

/** A value to store: a string (SecretString), bytes (SecretBinary), or either explicitly. */
export type SecretValue = string | Uint8Array | {string: string} | {binary: Uint8Array}

export interface CreateSecretOptions {
  description?: string
  tags?: Record<string, string>
  kmsKeyId?: string
  /** VersionId of the first value (default: a random UUID). */
  versionId?: string
}

export interface SecretRef {
  name: string
  arn: string
  /** VersionId of the value created with the secret (none when created without a value). */
  versionId?: string
}

interface Version {
  id: string
  string?: string
  binary?: Buffer
  created: number
  stages: string[]
}

interface Secret {
  name: string
  arn: string
  description?: string
  kmsKeyId?: string
  tags: {Key: string; Value: string}[]
  versions: Version[]
  created: number
  lastChanged: number
  lastAccessed?: number
  deleted?: number
  undecryptable: boolean
}

type Ctx = RequestContext<SecretsManagerCallFields>

const NOT_FOUND = "Secrets Manager can't find the specified secret."
const MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."
const DECRYPTION_FAILURE = "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
const NAME_RE = /^[A-Za-z0-9/_+=.@-]{1,512}$/
const FILTER_KEYS = ['description', 'name', 'tag-key', 'tag-value', 'primary-region', 'owning-service', 'all']
const FILTER_VALUE_RE = /^!?[a-zA-Z0-9 :_@/+=.\-!]*$/
const SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

function toVersionValue(v: SecretValue): {string?: string; binary?: Buffer} {
  if (typeof v === 'string') return {string: v}
  if (v instanceof Uint8Array) return {binary: Buffer.from(v)}
  return 'string' in v ? {string: v.string} : {binary: Buffer.from(v.binary)}
}

/** Words as the `all` filter sees them: split at punctuation and at lower→upper and letter↔digit changes. */
function words(s: string): string[] {
  return s
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .replace(/([A-Za-z])([0-9])/g, '$1 $2')
    .replace(/([0-9])([A-Za-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase())
}

export class SecretsManagerServer extends AwsJsonServer<SecretsManagerCallFields> {
  declare readonly calls: SecretsManagerCall[]
  protected readonly service = 'secretsmanager'
  protected readonly targetPrefix = 'secretsmanager.'
  protected readonly errorNamespace = 'com.amazonaws.secretsmanager'
  protected override readonly statuses = {InternalServiceError: 500}
  protected readonly internalErrorType = 'InternalServiceError'
  protected readonly operations: Record<SecretsManagerOperation, JsonOperation<SecretsManagerCallFields>> = {
    GetSecretValue: (ctx, body) => this.opGetSecretValue(ctx, body),
    BatchGetSecretValue: (ctx, body) => this.opBatchGetSecretValue(ctx, body),
    ListSecrets: (ctx, body) => this.opListSecrets(ctx, body),
    DescribeSecret: (ctx, body) => this.opDescribeSecret(ctx, body),
  }
  private readonly secrets = new Map<string, Secret>()
  private readonly denyTable = new DenyTable()

  // ---- test-side helpers (plain Errors on misuse) ----

  createSecret(name: string, value?: SecretValue, opts: CreateSecretOptions = {}): SecretRef {
    if (!NAME_RE.test(name)) throw new Error(`secretsmanager-server: invalid secret name ${JSON.stringify(name)}`)
    if (this.secrets.has(name)) throw new Error(`secretsmanager-server: the secret ${name} already exists`)
    let suffix = ''
    while (suffix.length < 6) suffix += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)]
    const now = this.clock.now()
    const secret: Secret = {
      name,
      arn: `arn:aws:secretsmanager:${this.region}:${this.accountId}:secret:${name}-${suffix}`,
      description: opts.description,
      kmsKeyId: opts.kmsKeyId,
      tags: Object.entries(opts.tags ?? {}).map(([Key, Value]) => ({Key, Value})),
      versions: [],
      created: now,
      lastChanged: now,
      undecryptable: false,
    }
    this.secrets.set(name, secret)
    const ref: SecretRef = {name, arn: secret.arn}
    if (value !== undefined) ref.versionId = this.putSecretValue(name, value, {versionId: opts.versionId})
    return ref
  }

  /**
   * Store a new version (PutSecretValue). By default it becomes AWSCURRENT and the version that
   * was current becomes AWSPREVIOUS. Returns the VersionId.
   */
  putSecretValue(secretId: string, value: SecretValue, opts: {versionId?: string; stages?: string[]} = {}): string {
    const s = this.mustSecret(secretId)
    const id = opts.versionId ?? randomUUID()
    if (id.length < 32 || id.length > 64) throw new Error(`secretsmanager-server: VersionId must be 32..64 characters`)
    if (s.versions.some((v) => v.id === id)) throw new Error(`secretsmanager-server: version ${id} already exists`)
    s.versions.push({id, ...toVersionValue(value), created: this.clock.now(), stages: []})
    for (const stage of opts.stages ?? ['AWSCURRENT']) this.updateVersionStage(secretId, stage, {moveTo: id})
    s.lastChanged = this.clock.now()
    return id
  }

  /**
   * Attach a staging label to a version, or remove it (UpdateSecretVersionStage). Moving
   * AWSCURRENT gives AWSPREVIOUS to the version it left, as Secrets Manager does.
   */
  updateVersionStage(secretId: string, stage: string, opts: {moveTo?: string; removeFrom?: string}): void {
    const s = this.mustSecret(secretId)
    const holder = s.versions.find((v) => v.stages.includes(stage))
    if (opts.removeFrom !== undefined && holder?.id !== opts.removeFrom) {
      throw new Error(`secretsmanager-server: ${stage} is not attached to version ${opts.removeFrom}`)
    }
    const target = opts.moveTo !== undefined ? s.versions.find((v) => v.id === opts.moveTo) : undefined
    if (opts.moveTo !== undefined && !target) throw new Error(`secretsmanager-server: no version ${opts.moveTo}`)
    if (target === holder) return
    if (holder) holder.stages = holder.stages.filter((x) => x !== stage)
    if (target) target.stages.push(stage)
    if (stage === 'AWSCURRENT' && holder && target) {
      for (const v of s.versions) v.stages = v.stages.filter((x) => x !== 'AWSPREVIOUS')
      holder.stages.push('AWSPREVIOUS')
    }
    s.lastChanged = this.clock.now()
  }

  tagSecret(secretId: string, tags: Record<string, string>): void {
    const s = this.mustSecret(secretId)
    for (const [Key, Value] of Object.entries(tags)) {
      s.tags = s.tags.filter((t) => t.Key !== Key)
      s.tags.push({Key, Value})
    }
    s.lastChanged = this.clock.now()
  }

  untagSecret(secretId: string, keys: string[]): void {
    const s = this.mustSecret(secretId)
    s.tags = s.tags.filter((t) => !keys.includes(t.Key))
    s.lastChanged = this.clock.now()
  }

  updateSecret(secretId: string, opts: {description?: string; kmsKeyId?: string}): void {
    const s = this.mustSecret(secretId)
    if (opts.description !== undefined) s.description = opts.description
    if (opts.kmsKeyId !== undefined) s.kmsKeyId = opts.kmsKeyId
    s.lastChanged = this.clock.now()
  }

  /** Schedule deletion (the secret is kept, marked), or with `force` remove it at once. */
  deleteSecret(secretId: string, opts: {force?: boolean; recoveryWindowDays?: number} = {}): void {
    const s = this.mustSecret(secretId)
    if (opts.force) {
      this.secrets.delete(s.name)
      return
    }
    s.deleted = this.clock.now() + (opts.recoveryWindowDays ?? 30) * 86_400_000
  }

  restoreSecret(secretId: string): void {
    delete this.mustSecret(secretId).deleted
  }

  /** Make reads fail with DecryptionFailure, as when the secret's KMS key is disabled. */
  setUndecryptable(secretId: string, undecryptable = true): void {
    this.mustSecret(secretId).undecryptable = undecryptable
  }

  /** VersionIdsToStages of a secret (for assertions). */
  versionStages(secretId: string): Record<string, string[]> {
    return Object.fromEntries(
      this.mustSecret(secretId)
        .versions.filter((v) => v.stages.length > 0)
        .map((v) => [v.id, [...v.stages]]),
    )
  }

  /** Deny an action (`GetSecretValue`, `ListSecrets`, ... or '*') on secrets to callers; returns a remover. */
  deny(rule: AwsDenyRule): () => void {
    return this.denyTable.add(rule)
  }

  clearDenies(): void {
    this.denyTable.clear()
  }

  // ---- internals ----

  private mustSecret(secretId: string): Secret {
    const s = this.resolve(secretId)
    if (!s) throw new Error(`secretsmanager-server: no secret ${secretId}`)
    return s
  }

  /** SecretId as Secrets Manager resolves it: name, full ARN, or ARN without the 6-character suffix. */
  private resolve(secretId: string): Secret | undefined {
    if (!secretId.startsWith('arn:')) return this.secrets.get(secretId)
    for (const s of this.secrets.values()) {
      if (s.arn === secretId || s.arn.slice(0, -7) === secretId) return s
    }
    return undefined
  }

  private authorize(ctx: Ctx, action: SecretsManagerOperation, secretId: string): void {
    const s = secretId === '*' ? undefined : this.resolve(secretId)
    const names = s ? [secretId, s.name, s.arn] : [secretId]
    if (this.denyTable.denies(action, names, ctx.caller, ctx.accessKeyId)) {
      throw accessDenied(this.principalArn(ctx), `secretsmanager:${action}`, secretId)
    }
  }

  private readable(s: Secret | undefined): Secret {
    if (!s) throw new AwsError('ResourceNotFoundException', NOT_FOUND)
    if (s.deleted !== undefined) throw new AwsError('InvalidRequestException', MARKED_FOR_DELETION)
    if (s.undecryptable) throw new AwsError('DecryptionFailure', DECRYPTION_FAILURE)
    return s
  }

  private version(s: Secret, versionId: string | undefined, stage: string | undefined): Version {
    if (versionId !== undefined) {
      const v = s.versions.find((x) => x.id === versionId)
      if (!v)
        throw new AwsError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`)
      if (stage !== undefined && !v.stages.includes(stage)) {
        throw new AwsError('InvalidRequestException', 'You provided a VersionStage that is not associated to the provided VersionId.')
      }
      return v
    }
    const label = stage ?? 'AWSCURRENT'
    const v = s.versions.find((x) => x.stages.includes(label))
    if (!v)
      throw new AwsError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for staging label: ${label}`)
    return v
  }

  private valueEntry(s: Secret, v: Version): Body {
    s.lastAccessed = Math.floor(this.clock.now() / 86_400_000) * 86_400_000
    const out: Body = {ARN: s.arn, Name: s.name, VersionId: v.id}
    if (v.binary !== undefined) out.SecretBinary = v.binary.toString('base64')
    if (v.string !== undefined) out.SecretString = v.string
    out.VersionStages = [...v.stages]
    out.CreatedDate = epochSeconds(v.created)
    return out
  }

  private metadata(s: Secret, stagesField: 'VersionIdsToStages' | 'SecretVersionsToStages'): Body {
    const out: Body = {ARN: s.arn, Name: s.name}
    if (s.description !== undefined) out.Description = s.description
    if (s.kmsKeyId !== undefined) out.KmsKeyId = s.kmsKeyId
    out.RotationEnabled = false
    out.LastChangedDate = epochSeconds(s.lastChanged)
    if (s.lastAccessed !== undefined) out.LastAccessedDate = epochSeconds(s.lastAccessed)
    if (s.deleted !== undefined) out.DeletedDate = epochSeconds(s.deleted)
    if (s.tags.length > 0) out.Tags = s.tags.map((t) => ({...t}))
    out[stagesField] = Object.fromEntries(s.versions.filter((v) => v.stages.length > 0).map((v) => [v.id, [...v.stages]]))
    out.CreatedDate = epochSeconds(s.created)
    return out
  }

  private parseFilters(body: Body): {key: string; values: string[]}[] {
    const filters = optList(body, 'Filters') ?? []
    checkLength('Filters', filters, 0, 10)
    return filters.map((f, i) => {
      const key = optString(f, 'Key')
      const values = optStringList(f, 'Values') ?? []
      if (key === undefined || !FILTER_KEYS.includes(key)) {
        throw validationError(
          `Value '${key ?? 'null'}' at 'filters.${i + 1}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [${FILTER_KEYS.join(', ')}]`,
        )
      }
      if (values.length < 1 || values.length > 10)
        throw validationError(
          `Value at 'filters.${i + 1}.member.values' failed to satisfy constraint: Member must have length between 1 and 10`,
        )
      for (const v of values) {
        if (v.length > 512 || !FILTER_VALUE_RE.test(v)) {
          throw validationError(
            `Value '${v}' at 'filters.${i + 1}.member.values' failed to satisfy constraint: Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$`,
          )
        }
      }
      return {key, values}
    })
  }

  private matchesFilter(s: Secret, key: string, value: string): boolean {
    const prefix = (candidates: (string | undefined)[], fold = false) =>
      candidates.some((c) => c !== undefined && (fold ? c.toLowerCase().startsWith(value.toLowerCase()) : c.startsWith(value)))
    switch (key) {
      case 'name':
        return prefix([s.name])
      case 'description':
        return prefix([s.description], true)
      case 'tag-key':
        return prefix(s.tags.map((t) => t.Key))
      case 'tag-value':
        return prefix(s.tags.map((t) => t.Value))
      case 'primary-region':
        return prefix([this.region])
      case 'owning-service':
        return false
      default: {
        const have = [s.name, s.description ?? '', ...s.tags.flatMap((t) => [t.Key, t.Value])].flatMap(words)
        return words(value).every((w) => have.some((h) => h.startsWith(w)))
      }
    }
  }

  private matchesFilters(s: Secret, filters: {key: string; values: string[]}[]): boolean {
    return filters.every(({key, values}) => {
      const positive = values.filter((v) => !v.startsWith('!'))
      const negative = values.filter((v) => v.startsWith('!')).map((v) => v.slice(1))
      return (
        (positive.length === 0 || positive.some((v) => this.matchesFilter(s, key, v))) &&
        !negative.some((v) => this.matchesFilter(s, key, v))
      )
    })
  }

  private sorted(body: Body, includeDeleted: boolean): Secret[] {
    const order = optString(body, 'SortOrder') ?? 'desc'
    const by = optString(body, 'SortBy') ?? 'created-date'
    if (order !== 'asc' && order !== 'desc')
      throw validationError(`Value '${order}' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: [asc, desc]`)
    const keyOf: Record<string, (s: Secret) => number | string> = {
      'created-date': (s) => s.created,
      'last-accessed-date': (s) => s.lastAccessed ?? 0,
      'last-changed-date': (s) => s.lastChanged,
      name: (s) => s.name,
    }
    const key = keyOf[by]
    if (!key)
      throw validationError(
        `Value '${by}' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value set: [created-date, last-accessed-date, last-changed-date, name]`,
      )
    const list = [...this.secrets.values()].filter((s) => includeDeleted || s.deleted === undefined)
    // Ties keep creation order, so pages are stable.
    list.sort((a, b) => {
      const [x, y] = [key(a), key(b)]
      const c = x < y ? -1 : x > y ? 1 : 0
      return order === 'asc' ? c : -c
    })
    return list
  }

  // ---- operations ----

  private opGetSecretValue(ctx: Ctx, body: Body): Body {
    const secretId = requiredString(body, 'SecretId', 1, 2048)
    ctx.record.secretId = secretId
    const versionId = optString(body, 'VersionId')
    const stage = optString(body, 'VersionStage')
    ctx.record.versionId = versionId
    ctx.record.versionStage = stage
    if (versionId !== undefined) checkLength('VersionId', versionId, 32, 64)
    if (stage !== undefined) checkLength('VersionStage', stage, 1, 256)
    this.authorize(ctx, 'GetSecretValue', secretId)
    const s = this.readable(this.resolve(secretId))
    const out = this.valueEntry(s, this.version(s, versionId, stage))
    ctx.record.returned = 1
    return out
  }

  private opDescribeSecret(ctx: Ctx, body: Body): Body {
    const secretId = requiredString(body, 'SecretId', 1, 2048)
    ctx.record.secretId = secretId
    this.authorize(ctx, 'DescribeSecret', secretId)
    const s = this.resolve(secretId)
    if (!s) throw new AwsError('ResourceNotFoundException', NOT_FOUND)
    ctx.record.returned = 1
    return this.metadata(s, 'VersionIdsToStages')
  }

  private opListSecrets(ctx: Ctx, body: Body): Body {
    const max = optInt(body, 'MaxResults') ?? 100
    checkRange('MaxResults', max, 1, 100)
    const filters = this.parseFilters(body)
    const includeDeleted = optBool(body, 'IncludePlannedDeletion') ?? false
    const token = optString(body, 'NextToken')
    this.authorize(ctx, 'ListSecrets', '*')
    const query = {filters, includeDeleted, order: body.SortOrder ?? null, by: body.SortBy ?? null}
    const offset = tokenOffset(token, query)
    if (offset === undefined) throw new AwsError('InvalidNextTokenException', 'The NextToken value is invalid.')
    const all = this.sorted(body, includeDeleted)
    const p = page(all, offset, max, (s) => this.matchesFilters(s, filters), this.listScanLimit)
    ctx.record.returned = p.items.length
    const out: Body = {SecretList: p.items.map((s) => this.metadata(s, 'SecretVersionsToStages'))}
    if (p.next !== undefined) out.NextToken = nextToken(p.next, query)
    return out
  }

  private opBatchGetSecretValue(ctx: Ctx, body: Body): Body {
    const ids = optStringList(body, 'SecretIdList')
    const hasFilters = body.Filters !== undefined && body.Filters !== null
    const filters = this.parseFilters(body)
    const maxGiven = optInt(body, 'MaxResults')
    const token = optString(body, 'NextToken')
    if ((ids === undefined) === !hasFilters)
      throw new AwsError('InvalidParameterException', 'Specify either SecretIdList or Filters, but not both.')
    if (ids !== undefined) {
      checkLength('SecretIdList', ids, 1, 20)
      if (maxGiven !== undefined) throw new AwsError('InvalidParameterException', 'MaxResults can be used only with Filters.')
    }
    if (maxGiven !== undefined) checkRange('MaxResults', maxGiven, 1, 20)
    ctx.record.secretIds = ids
    this.authorize(ctx, 'BatchGetSecretValue', '*')

    const values: Body[] = []
    const errors: Body[] = []
    const fetch = (secretId: string, s: Secret | undefined) => {
      try {
        this.authorize(ctx, 'GetSecretValue', secretId)
        const r = this.readable(s)
        values.push(this.valueEntry(r, this.version(r, undefined, undefined)))
      } catch (e) {
        if (!(e instanceof AwsError)) throw e
        errors.push({SecretId: secretId, ErrorCode: e.type, Message: e.message})
      }
    }
    const out: Body = {}
    if (ids !== undefined) {
      if (token !== undefined) throw new AwsError('InvalidNextTokenException', 'The NextToken value is invalid.')
      for (const id of ids) fetch(id, this.resolve(id))
    } else {
      const query = {filters}
      const offset = tokenOffset(token, query)
      if (offset === undefined) throw new AwsError('InvalidNextTokenException', 'The NextToken value is invalid.')
      const p = page(this.sorted({}, false), offset, maxGiven ?? 20, (s) => this.matchesFilters(s, filters), this.listScanLimit)
      for (const s of p.items) fetch(s.arn, s)
      if (p.next !== undefined) out.NextToken = nextToken(p.next, query)
    }
    ctx.record.returned = values.length
    out.SecretValues = values
    out.Errors = errors
    return out
  }
}

/** Start a Secrets Manager test server on 127.0.0.1 with a random port. */
export async function startSecretsManagerServer(opts: SecretsManagerServerOptions = {}): Promise<SecretsManagerServer> {
  return new SecretsManagerServer(opts).listen()
}
