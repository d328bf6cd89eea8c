/**
 * A local AWS Systems Manager Parameter Store that speaks the real wire protocol (awsJson1_1,
 * `X-Amz-Target: AmazonSSM.<Operation>`, signing name `ssm`), so providers are exercised through the
 * real `@aws-sdk/client-ssm` over a real socket, with every request's SigV4 signature verified
 * (shared core: test/support/aws/).
 *
 * Faithful: GetParameter (name or ARN; `name:version` and `name:label` selectors, echoed in
 * `Selector`; WithDecryption: a SecureString without it returns its ciphertext), GetParameters
 * (found ones in Parameters, the rest in InvalidParameters), GetParametersByPath (one level or
 * Recursive; ParameterFilters Type / KeyId / Label; MaxResults 1..10 and NextToken),
 * DescribeParameters (ParameterFilters Name / Path / Type / KeyId / DataType / Tier / tag:KEY /
 * tag-key with their options; MaxResults 1..50); String / StringList / SecureString; versions and
 * labels (a label sits on one version at a time); ARNs and field names; errors with the codes,
 * messages and status AWS uses: ParameterNotFound (no message, as AWS sends it),
 * ParameterVersionNotFound, AccessDeniedException, ThrottlingException "Rate exceeded",
 * InvalidFilterKey / InvalidFilterOption, InvalidNextToken, ValidationException (400),
 * InternalServerError (500).
 *
 * Deliberate simplifications: writes (put, label, tag, delete) are test-side helpers, not SDK
 * operations; there is no KMS behind SecureString (the ciphertext is an opaque per-version blob);
 * no parameter policies, advanced tier, shared parameters or version limits; results are in name
 * order; the messages of the selector and filter errors are our wording; filtered pages are full
 * unless `listScanLimit` makes them short, as AWS may.
 */
import {randomBytes} from 'node:crypto'
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

export type SsmOperation = 'GetParameter' | 'GetParameters' | 'GetParametersByPath' | 'DescribeParameters'
export type ParameterType = 'String' | 'StringList' | 'SecureString'

export interface SsmCallFields {
  /** Name (GetParameter) or Path (GetParametersByPath) as sent. */
  name: string
  names: string[]
  withDecryption: boolean
  returned: number
}

export type SsmCall = AwsCall & Partial<SsmCallFields>

export type SsmServerOptions = AwsJsonServerOptions

export interface PutParameterOptions {
  type?: ParameterType
  description?: string
  /** KMS key of a SecureString (default alias/aws/ssm). */
  keyId?: string
  tags?: Record<string, string>
  dataType?: string
}

interface ParamVersion {
  version: number
  value: string
  ciphertext?: string
  labels: string[]
  modified: number
  description?: string
}

interface Param {
  name: string
  arn: string
  type: ParameterType
  keyId?: string
  dataType: string
  tags: {Key: string; Value: string}[]
  versions: ParamVersion[]
}

interface Filter {
  key: string
  option: string
  values: string[]
}

type Ctx = RequestContext<SsmCallFields>

const NAME_RE = /^[a-zA-Z0-9_.\-/]+$/
const LABEL_RE = /^[a-zA-Z0-9_.-]{1,100}$/
const PATH_MESSAGE =
  'The parameter doesn\'t meet the parameter name requirements. The parameter name must begin with a forward slash "/". ' +
  'It can\'t be prefixed with "aws" or "ssm" (case-insensitive). It must use only letters, numbers, or the following symbols: . (period), ' +
  '- (hyphen), _ (underscore). Special characters are not allowed. All sub-paths, if specified, must use the forward slash symbol "/". ' +
  'Valid example: /get/parameters2-/by1./path0_.'

function notFound(): AwsError {
  return new AwsError('ParameterNotFound')
}

export class SsmServer extends AwsJsonServer<SsmCallFields> {
  declare readonly calls: SsmCall[]
  protected readonly service = 'ssm'
  protected readonly targetPrefix = 'AmazonSSM.'
  protected readonly errorNamespace = 'com.amazonaws.ssm'
  protected override readonly statuses = {InternalServerError: 500}
  protected readonly internalErrorType = 'InternalServerError'
  protected readonly operations: Record<SsmOperation, JsonOperation<SsmCallFields>> = {
    GetParameter: (ctx, body) => this.opGetParameter(ctx, body),
    GetParameters: (ctx, body) => this.opGetParameters(ctx, body),
    GetParametersByPath: (ctx, body) => this.opGetParametersByPath(ctx, body),
    DescribeParameters: (ctx, body) => this.opDescribeParameters(ctx, body),
  }
  private readonly params = new Map<string, Param>()
  private readonly denyTable = new DenyTable()

  // ---- test-side helpers (plain Errors on misuse) ----

  /** PutParameter: a new parameter, or (with the same type) its next version. Returns the version. */
  putParameter(name: string, value: string, opts: PutParameterOptions = {}): number {
    const problem = this.nameProblem(name)
    if (problem) throw new Error(`ssm-server: ${problem}: ${JSON.stringify(name)}`)
    let p = this.params.get(name)
    const type = opts.type ?? p?.type ?? 'String'
    if (!p) {
      p = {
        name,
        arn: this.arnOf(name),
        type,
        keyId: type === 'SecureString' ? (opts.keyId ?? 'alias/aws/ssm') : undefined,
        dataType: opts.dataType ?? 'text',
        tags: [],
        versions: [],
      }
      this.params.set(name, p)
    } else if (type !== p.type) {
      throw new Error(`ssm-server: ${name} is a ${p.type}, not a ${type}`)
    }
    if (opts.tags) this.tagParameter(name, opts.tags)
    const version = (p.versions.at(-1)?.version ?? 0) + 1
    p.versions.push({
      version,
      value,
      ciphertext: type === 'SecureString' ? `AQICAHh${randomBytes(96).toString('base64')}` : undefined,
      labels: [],
      modified: this.clock.now(),
      description: opts.description ?? p.versions.at(-1)?.description,
    })
    return version
  }

  /** LabelParameterVersion: labels move to this version (default: the latest) from any other. */
  labelParameterVersion(name: string, labels: string[], version?: number): void {
    const p = this.mustParam(name)
    const v = version === undefined ? p.versions.at(-1)! : p.versions.find((x) => x.version === version)
    if (!v) throw new Error(`ssm-server: ${name} has no version ${version}`)
    for (const label of labels) {
      if (!LABEL_RE.test(label) || /^\d/.test(label) || /^(aws|ssm)/i.test(label))
        throw new Error(`ssm-server: invalid label ${JSON.stringify(label)}`)
      for (const other of p.versions) other.labels = other.labels.filter((l) => l !== label)
      v.labels.push(label)
    }
  }

  tagParameter(name: string, tags: Record<string, string>): void {
    const p = this.mustParam(name)
    for (const [Key, Value] of Object.entries(tags)) {
      p.tags = p.tags.filter((t) => t.Key !== Key)
      p.tags.push({Key, Value})
    }
  }

  deleteParameter(name: string): void {
    this.mustParam(name)
    this.params.delete(name)
  }

  /** Deny an action (`GetParameter`, `GetParametersByPath`, ... or '*') on parameter ARNs / names to callers; returns a remover. */
  deny(rule: AwsDenyRule): () => void {
    return this.denyTable.add(rule)
  }

  clearDenies(): void {
    this.denyTable.clear()
  }

  // ---- internals ----

  private nameProblem(name: string): string | undefined {
    if (name.length < 1 || name.length > 1011) return 'parameter names are 1..1011 characters'
    if (!NAME_RE.test(name)) return 'parameter names use letters, digits, . - _ and /'
    if (name.includes('/') && !name.startsWith('/')) return 'a hierarchical name must begin with /'
    if (/^\/?(aws|ssm)/i.test(name)) return 'names may not begin with aws or ssm'
    if (name.split('/').length - 1 > 15) return 'at most 15 levels of hierarchy'
    return undefined
  }

  private arnOf(name: string): string {
    return `arn:aws:ssm:${this.region}:${this.accountId}:parameter${name.startsWith('/') ? '' : '/'}${name}`
  }

  private mustParam(name: string): Param {
    const p = this.params.get(name)
    if (!p) throw new Error(`ssm-server: no parameter ${name}`)
    return p
  }

  /** `name`, `name:3`, `name:label`, or the same with the parameter's ARN. */
  private parseSelector(ref: string): {name: string; selector?: string} {
    let rest = ref
    let arnName: string | undefined
    const prefix = `arn:aws:ssm:${this.region}:${this.accountId}:parameter/`
    if (ref.startsWith('arn:')) {
      if (!ref.startsWith(prefix)) return {name: ref}
      rest = ref.slice(prefix.length)
      arnName = rest
    }
    const i = rest.indexOf(':')
    const base = i < 0 ? rest : rest.slice(0, i)
    const selector = i < 0 ? undefined : rest.slice(i)
    if (selector !== undefined && !/^:(\d+|[a-zA-Z0-9_.-]{1,100})$/.test(selector)) {
      throw validationError(`Value '${ref}' at 'name' failed to satisfy constraint: the selector must be :<version> or :<label>`)
    }
    if (arnName === undefined) return {name: base, selector}
    return {name: base.includes('/') || this.params.has(`/${base}`) ? `/${base}` : base, selector}
  }

  private authorize(ctx: Ctx, action: SsmOperation, names: string[]): void {
    for (const n of names) {
      const arn = n === '*' ? '*' : n.startsWith('arn:') ? n : this.arnOf(n)
      if (this.denyTable.denies(action, n === '*' ? ['*'] : [n, arn], ctx.caller, ctx.accessKeyId)) {
        throw accessDenied(this.principalArn(ctx), `ssm:${action}`, arn)
      }
    }
  }

  /** The version a selector names, or the error GetParameter answers. */
  private select(ref: string): {p: Param; v: ParamVersion; selector?: string} {
    const {name, selector} = this.parseSelector(ref)
    const p = this.params.get(name)
    if (!p) throw notFound()
    if (selector === undefined) return {p, v: p.versions.at(-1)!}
    if (/^:\d+$/.test(selector)) {
      const n = Number(selector.slice(1))
      const v = p.versions.find((x) => x.version === n)
      if (!v)
        throw new AwsError(
          'ParameterVersionNotFound',
          `Systems Manager could not find version ${n} of ${name}. Verify the version and try again.`,
        )
      return {p, v, selector}
    }
    const v = p.versions.find((x) => x.labels.includes(selector.slice(1)))
    if (!v) throw notFound()
    return {p, v, selector}
  }

  private parameter(p: Param, v: ParamVersion, withDecryption: boolean, selector?: string): Body {
    const out: Body = {
      Name: p.name,
      Type: p.type,
      Value: p.type === 'SecureString' && !withDecryption ? v.ciphertext : v.value,
      Version: v.version,
    }
    if (selector !== undefined) out.Selector = selector
    out.LastModifiedDate = epochSeconds(v.modified)
    out.ARN = p.arn
    out.DataType = p.dataType
    return out
  }

  private metadata(p: Param): Body {
    const v = p.versions.at(-1)!
    const out: Body = {Name: p.name, ARN: p.arn, Type: p.type}
    if (p.keyId !== undefined) out.KeyId = p.keyId
    out.LastModifiedDate = epochSeconds(v.modified)
    out.LastModifiedUser = `arn:aws:iam::${this.accountId}:user/kseal-test`
    if (v.description !== undefined) out.Description = v.description
    out.Version = v.version
    out.Tier = 'Standard'
    out.Policies = []
    out.DataType = p.dataType
    return out
  }

  private sortedParams(): Param[] {
    return [...this.params.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  private parseFilters(body: Body, allowed: Record<string, string[]>, allowTags: boolean): Filter[] {
    const list = optList(body, 'ParameterFilters') ?? []
    return list.map((f) => {
      const key = optString(f, 'Key') ?? ''
      const isTag = key.startsWith('tag:') && key.length > 4
      const options = isTag || key === 'tag-key' ? (allowTags ? ['Equals', 'BeginsWith'] : undefined) : allowed[key]
      if (!options) {
        throw new AwsError(
          'InvalidFilterKey',
          `The following filter key is not valid: ${key}. Valid filter keys include: [${[...Object.keys(allowed), ...(allowTags ? ['tag:KEY', 'tag-key'] : [])].join(', ')}].`,
        )
      }
      const option = optString(f, 'Option') ?? options[0]!
      if (!options.includes(option)) {
        throw new AwsError(
          'InvalidFilterOption',
          `The following filter option is not valid: ${option}. Valid options include: [${options.join(', ')}].`,
        )
      }
      const values = optStringList(f, 'Values') ?? []
      if (values.length === 0 && !isTag)
        throw new AwsError('InvalidFilterValue', `The following filter values are missing : null for filter key ${key}.`)
      return {key, option, values}
    })
  }

  private matches(p: Param, f: Filter): boolean {
    const test = (have: string | undefined) =>
      have !== undefined &&
      f.values.some((want) =>
        f.option === 'BeginsWith' ? have.startsWith(want) : f.option === 'Contains' ? have.includes(want) : have === want,
      )
    if (f.key.startsWith('tag:')) {
      const tag = p.tags.find((t) => t.Key === f.key.slice(4))
      return tag !== undefined && (f.values.length === 0 || test(tag.Value))
    }
    switch (f.key) {
      case 'tag-key':
        return p.tags.some((t) => test(t.Key))
      case 'Type':
        return test(p.type)
      case 'KeyId':
        return test(p.keyId)
      case 'DataType':
        return test(p.dataType)
      case 'Tier':
        return test('Standard')
      case 'Label':
        return p.versions.some((v) => v.labels.some((l) => test(l)))
      case 'Name':
        return test(p.name) || (!p.name.startsWith('/') && test(`/${p.name}`))
      case 'Path':
        return f.values.some((path) => this.underPath(p.name, path, f.option === 'Recursive'))
      default:
        return false
    }
  }

  private underPath(name: string, path: string, recursive: boolean): boolean {
    const base = path === '/' ? '/' : `${path.replace(/\/+$/, '')}/`
    if (!name.startsWith(base)) return false
    return recursive || !name.slice(base.length).includes('/')
  }

  private page(
    ctx: Ctx,
    body: Body,
    query: unknown,
    defaultMax: number,
    maxMax: number,
    keep: (p: Param) => boolean,
  ): {items: Param[]; token?: string} {
    const max = optInt(body, 'MaxResults') ?? defaultMax
    checkRange('MaxResults', max, 1, maxMax)
    const offset = tokenOffset(optString(body, 'NextToken'), query)
    if (offset === undefined) throw new AwsError('InvalidNextToken', "The specified token isn't valid.")
    const p = page(this.sortedParams(), offset, max, keep, this.listScanLimit)
    ctx.record.returned = p.items.length
    return {items: p.items, token: p.next === undefined ? undefined : nextToken(p.next, query)}
  }

  // ---- operations ----

  private opGetParameter(ctx: Ctx, body: Body): Body {
    const ref = requiredString(body, 'Name', 1, 2048)
    const withDecryption = optBool(body, 'WithDecryption') ?? false
    ctx.record.name = ref
    ctx.record.withDecryption = withDecryption
    const {name} = this.parseSelector(ref)
    this.authorize(ctx, 'GetParameter', [name])
    const {p, v, selector} = this.select(ref)
    ctx.record.returned = 1
    return {Parameter: this.parameter(p, v, withDecryption, selector)}
  }

  private opGetParameters(ctx: Ctx, body: Body): Body {
    const refs = optStringList(body, 'Names')
    if (refs === undefined) throw validationError(`Value null at 'names' failed to satisfy constraint: Member must not be null`)
    checkLength('Names', refs, 1, 10)
    const withDecryption = optBool(body, 'WithDecryption') ?? false
    ctx.record.names = refs
    ctx.record.withDecryption = withDecryption
    this.authorize(
      ctx,
      'GetParameters',
      refs.map((r) => this.parseSelector(r).name),
    )
    const found: Body[] = []
    const invalid: string[] = []
    for (const ref of refs) {
      try {
        const {p, v, selector} = this.select(ref)
        found.push(this.parameter(p, v, withDecryption, selector))
      } catch (e) {
        if (!(e instanceof AwsError) || (e.type !== 'ParameterNotFound' && e.type !== 'ParameterVersionNotFound')) throw e
        invalid.push(ref)
      }
    }
    ctx.record.returned = found.length
    return {Parameters: found, InvalidParameters: invalid}
  }

  private opGetParametersByPath(ctx: Ctx, body: Body): Body {
    const path = requiredString(body, 'Path', 1, 2048)
    ctx.record.name = path
    if (!path.startsWith('/') || !NAME_RE.test(path) || /^\/(aws|ssm)/i.test(path)) throw new AwsError('ValidationException', PATH_MESSAGE)
    const recursive = optBool(body, 'Recursive') ?? false
    const withDecryption = optBool(body, 'WithDecryption') ?? false
    ctx.record.withDecryption = withDecryption
    const filters = this.parseFilters(body, {Type: ['Equals', 'BeginsWith'], KeyId: ['Equals', 'BeginsWith'], Label: ['Equals']}, false)
    this.authorize(ctx, 'GetParametersByPath', [path === '/' ? '/' : path.replace(/\/+$/, '')])
    const query = {path, recursive, filters}
    const r = this.page(
      ctx,
      body,
      query,
      10,
      10,
      (p) => this.underPath(p.name, path, recursive) && filters.every((f) => this.matches(p, f)),
    )
    // With a Label filter, the labelled version is the one returned.
    const label = filters.find((f) => f.key === 'Label')
    const version = (p: Param) =>
      (label ? p.versions.find((v) => v.labels.some((l) => label.values.includes(l))) : undefined) ?? p.versions.at(-1)!
    const out: Body = {Parameters: r.items.map((p) => this.parameter(p, version(p), withDecryption))}
    if (r.token !== undefined) out.NextToken = r.token
    return out
  }

  private opDescribeParameters(ctx: Ctx, body: Body): Body {
    if (body.Filters !== undefined && body.Filters !== null)
      throw new AwsError('ValidationException', 'kseal ssm-server: use ParameterFilters, not the deprecated Filters')
    const eq = ['Equals', 'BeginsWith']
    const filters = this.parseFilters(
      body,
      {Name: ['Equals', 'BeginsWith', 'Contains'], Path: ['OneLevel', 'Recursive'], Type: eq, KeyId: eq, DataType: eq, Tier: eq},
      true,
    )
    this.authorize(ctx, 'DescribeParameters', ['*'])
    const r = this.page(ctx, body, {filters}, 50, 50, (p) => filters.every((f) => this.matches(p, f)))
    const out: Body = {Parameters: r.items.map((p) => this.metadata(p))}
    if (r.token !== undefined) out.NextToken = r.token
    return out
  }
}

/** Start an SSM Parameter Store test server on 127.0.0.1 with a random port. */
export async function startSsmServer(opts: SsmServerOptions = {}): Promise<SsmServer> {
  return new SsmServer(opts).listen()
}
