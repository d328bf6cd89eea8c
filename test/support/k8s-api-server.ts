/**
 * In-memory Kubernetes API server for tests, served over real HTTP.
 *
 * It aims to reproduce what a real kube-apiserver (~v1.31) does on the wire for the resources kseal
 * touches: paths, status codes, `Status` error bodies (reason/message/details as the apiserver
 * builds them), a global etcd-like resourceVersion, watch streams (newline-delimited JSON over a
 * chunked response, replay from a bounded per-resource history, 410 `Expired` ERROR events, selector
 * transitions turned into ADDED/DELETED like the watch cache does), optimistic concurrency,
 * status subresources, generation, finalizers, ownerReference garbage collection and the Secret /
 * Event / Lease decoding and validation rules that bite controllers in production.
 *
 * Deliberate simplifications are listed in the README-style comment at the bottom of this file
 * (search for "SIMPLIFICATIONS").
 */
import http from 'node:http'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {randomUUID, randomInt} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import type {AddressInfo, Socket} from 'node:net'
import YAML from 'yaml'
import {KubeConfig} from '@kubernetes/client-node'
import {
  ADMIN_USER,
  SERVICE_ACCOUNT_DEFINITION,
  ServiceAccountTokens,
  type IssuedToken,
  type IssueOptions,
  type TokenOptions,
} from './k8s-tokens.js'

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** A JSON Kubernetes object (loosely typed on purpose: tests poke at arbitrary fields). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = Record<string, any>

/** A validation error in the shape of k8s.io/apimachinery/pkg/util/validation/field.Error. */
export interface FieldError {
  type: 'Required' | 'Invalid' | 'Forbidden' | 'TooLong' | 'NotSupported' | 'Duplicate' | 'TooMany'
  field: string
  /** Offending value (Invalid/NotSupported/Duplicate). `{goSyntax: '0x0'}` prints verbatim. */
  value?: unknown
  detail?: string
}

export interface ResourceDefinition {
  /** '' for the core group. */
  group: string
  version: string
  /** Plural resource name, e.g. `secrets`. */
  resource: string
  kind: string
  singular?: string
  listKind?: string
  namespaced: boolean
  shortNames?: string[]
  categories?: string[]
  /** Serve `/status` with status-subresource semantics. */
  statusSubresource?: boolean
  /**
   * CustomResource semantics (default false): generation starts at 1 and bumps on any non-metadata
   * change, PUT requires metadata.resourceVersion, strategic-merge-patch is rejected with 415,
   * list items carry apiVersion/kind, DELETE returns the object, error messages use
   * `<plural>.<group>`.
   */
  custom?: boolean
  /** PUT on a missing object creates it (true for Leases and Events). Default false. */
  allowCreateOnUpdate?: boolean
  /** PUT without metadata.resourceVersion is accepted. Default: true for built-ins, false for CRs. */
  allowUnconditionalUpdate?: boolean
  /** DELETE answers with the object instead of a `Status`. Default: true for CRs. */
  returnDeletedObject?: boolean
  /** Track metadata.generation (default: true for CRs, false otherwise). */
  generation?: boolean
  /** Extra field selectors beyond metadata.name/metadata.namespace. */
  fieldSelectors?: Record<string, (obj: KubeObject) => string | undefined>
  /**
   * Known top-level fields of a built-in type. Unknown fields are dropped (Warning header), or
   * rejected with `fieldValidation=Strict`, like typed decoding does. Omit for CRs (kept as-is).
   */
  knownFields?: string[]
  /** Storage identity: definitions sharing it see the same objects (core/v1 and events.k8s.io/v1 Events). */
  storageKey?: string
  /** Convert an object of this definition's version to the storage version (default: identity). */
  toStorage?: (obj: KubeObject) => KubeObject
  /** Convert a storage object to this definition's version (default: identity). */
  fromStorage?: (obj: KubeObject) => KubeObject
  /**
   * Typed decoding of a request body in this definition's version. Mutate `obj` (defaulting,
   * normalisation) and return an error message to reject it as a decoding error (400 on
   * create/update, 422 `patch: Invalid value` on patch, like the apiserver).
   */
  decode?: (obj: KubeObject) => string | undefined
  /** Strategy hook run on create (storage version). */
  prepareForCreate?: (obj: KubeObject) => void
  /** Strategy hook run on update of the main resource (storage version). */
  prepareForUpdate?: (obj: KubeObject, old: KubeObject) => void
  /** Type-specific validation (storage version), on top of the generic ObjectMeta validation. */
  validate?: (obj: KubeObject, old: KubeObject | undefined, def: ResourceDefinition) => FieldError[]
  /** Name validation: DNS-1123 subdomain (default) or label. */
  nameValidation?: 'subdomain' | 'label'
}

export interface K8sApiServerOptions {
  /** Port to listen on (default 0: random). Always binds 127.0.0.1 unless `host` says otherwise. */
  port?: number
  host?: string
  /** When set, every request must carry `Authorization: Bearer <token>` (401 otherwise). */
  token?: string
  /** Watch history kept per resource (like the watch cache). Default 500 events. */
  historySize?: number
  /** Delay added before each request is processed. */
  latencyMs?: number
  /** Reject creates in namespaces that do not exist (NamespaceLifecycle admission). Default false. */
  requireNamespaces?: boolean
  /** Run the garbage collector / namespace controller emulation. Default true. */
  gc?: boolean
  /** Delay before a GC pass runs after a write (default 0: next macrotask). */
  gcDelayMs?: number
  /** Interval of BOOKMARK events on watches with allowWatchBookmarks=true (default 60000; 0 = never). */
  bookmarkIntervalMs?: number
  /** How long reads with a resourceVersion from the future wait before 504 (real: 3000ms). */
  tooLargeResourceVersionWaitMs?: number
  /** First resourceVersion handed out is this + 1. Default 1000. */
  initialResourceVersion?: number
  /** Namespaces present at start. Default: default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[]
  /** Extra resources (e.g. another CRD). */
  resources?: ResourceDefinition[]
  /** Reported by /version. Default 1.31. */
  version?: {major: string; minor: string}
  /**
   * ServiceAccount tokens (k8s-tokens.ts): issuer, API audiences, max token expiration, clock, and
   * an authorizer deciding what each user may do (none: everything is allowed).
   */
  tokens?: TokenOptions
}

/** What the apiserver's RequestInfoFactory would say about a request. */
export interface RequestInfo {
  method: string
  path: string
  query: Record<string, string>
  /** get | list | watch | create | update | patch | delete | deletecollection; lower-case method for non-resource requests. */
  verb: string
  isResourceRequest: boolean
  apiGroup?: string
  apiVersion?: string
  resource?: string
  subresource?: string
  namespace?: string
  name?: string
}

export interface RequestRecord extends RequestInfo {
  /** HTTP status sent (0 while a response is still pending). */
  status: number
  /** Authenticated user (`system:serviceaccount:NS:SA` for ServiceAccount tokens); unset for health checks and OIDC discovery. */
  user?: string
  time: number
}

export type RequestFilter =
  | Partial<Pick<RequestInfo, 'method' | 'verb' | 'resource' | 'subresource' | 'namespace' | 'name' | 'apiGroup'>>
  | ((r: RequestRecord) => boolean)

export interface FaultOptions {
  /** HTTP status (default 500). 500 InternalError, 503 ServiceUnavailable, 429 TooManyRequests, 504 Timeout, or any other code. */
  status?: number
  /** Which requests to fail (default: any resource request, i.e. not discovery/version). */
  match?: (req: RequestInfo) => boolean
  /** Retry-After seconds (header + details.retryAfterSeconds). Default 1 for 429/503. */
  retryAfter?: number
  message?: string
}

export interface WatchFilter {
  resource?: string
  apiGroup?: string
  namespace?: string
}

export interface KubeconfigOptions {
  namespace?: string
  /** Token to put in the kubeconfig (default: the server's token, or a dummy one). */
  token?: string
}

export interface K8sApiServer {
  readonly url: string
  readonly port: number
  /** Delay added before processing each request (mutable). */
  latencyMs: number
  /** Every request received, in order. */
  readonly requests: RequestRecord[]
  /** TCP connections accepted so far (a client that keeps connections opens few). */
  readonly connectionsAccepted: number
  /** Current global resourceVersion. */
  readonly resourceVersion: string
  close(): Promise<void>
  writeKubeconfig(path: string, opts?: KubeconfigOptions): Promise<void>
  kubeConfig(opts?: KubeconfigOptions): KubeConfig
  registerResource(def: ResourceDefinition): void
  getObject<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kindOrResource: string,
    namespace: string | undefined,
    name: string,
  ): T | undefined
  listObjects<T extends KubeObject = KubeObject>(apiVersion: string, kindOrResource: string, namespace?: string): T[]
  putObject<T extends KubeObject = KubeObject>(obj: T): T
  deleteObject(apiVersion: string, kindOrResource: string, namespace: string | undefined, name: string): KubeObject | undefined
  countRequests(filter?: RequestFilter): number
  findRequests(filter?: RequestFilter): RequestRecord[]
  clearRequests(): void
  failNext(n: number, opts?: FaultOptions): void
  clearFaults(): void
  openWatches(filter?: WatchFilter): number
  waitForWatches(count: number, filter?: WatchFilter, timeoutMs?: number): Promise<void>
  dropWatches(filter?: WatchFilter): number
  closeWatches(filter?: WatchFilter): number
  expireWatches(filter?: WatchFilter): number
  compact(filter?: WatchFilter): void
  sendBookmarks(): void
  settle(): Promise<void>
  /** `iss` of the ServiceAccount tokens this server issues. */
  readonly serviceAccountIssuer: string
  /** A token for an existing ServiceAccount, as `kubectl create token` gets one. */
  issueServiceAccountToken(namespace: string, name: string, opts?: IssueOptions): IssuedToken
}

// ---------------------------------------------------------------------------------------------
// Status errors
// ---------------------------------------------------------------------------------------------

export class StatusError extends Error {
  readonly status: KubeObject
  readonly headers: Record<string, string>
  constructor(status: KubeObject, headers: Record<string, string> = {}) {
    super(String(status.message ?? ''))
    this.status = status
    this.headers = headers
  }
  get code(): number {
    return Number(this.status.code)
  }
}

function statusBody(code: number, reason: string | undefined, message: string, details?: KubeObject): KubeObject {
  const s: KubeObject = {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message}
  if (reason) s.reason = reason
  if (details) s.details = details
  s.code = code
  return s
}

function qualifiedResource(def: ResourceDefinition): string {
  return def.group ? `${def.resource}.${def.group}` : def.resource
}

function resourceDetails(def: ResourceDefinition, name: string, extra: KubeObject = {}): KubeObject {
  const d: KubeObject = {}
  if (name) d.name = name
  if (def.group) d.group = def.group
  d.kind = def.resource // the apiserver puts the *resource* in details.kind for these errors
  return {...d, ...extra}
}

export const errors = {
  notFound: (def: ResourceDefinition, name: string) =>
    new StatusError(statusBody(404, 'NotFound', `${qualifiedResource(def)} ${goQuote(name)} not found`, resourceDetails(def, name))),
  alreadyExists: (def: ResourceDefinition, name: string) =>
    new StatusError(
      statusBody(409, 'AlreadyExists', `${qualifiedResource(def)} ${goQuote(name)} already exists`, resourceDetails(def, name)),
    ),
  conflict: (def: ResourceDefinition, name: string, why: string) =>
    new StatusError(
      statusBody(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualifiedResource(def)} ${goQuote(name)}: ${why}`,
        resourceDetails(def, name),
      ),
    ),
  invalid: (group: string, kind: string, name: string, errs: FieldError[]) => {
    const qualifiedKind = group ? `${kind}.${group}` : kind
    const agg = errs.length === 1 ? fieldErrorString(errs[0]!) : `[${errs.map(fieldErrorString).join(', ')}]`
    const details: KubeObject = {}
    if (name) details.name = name
    if (group) details.group = group
    if (kind) details.kind = kind
    details.causes = errs.map((e) => ({reason: causeReason(e.type), message: fieldErrorBody(e), field: e.field}))
    return new StatusError(statusBody(422, 'Invalid', `${qualifiedKind} ${goQuote(name)} is invalid: ${agg}`, details))
  },
  badRequest: (message: string) => new StatusError(statusBody(400, 'BadRequest', message)),
  forbidden: (def: ResourceDefinition, name: string, why: string, causes?: KubeObject[]) =>
    new StatusError(
      statusBody(
        403,
        'Forbidden',
        `${qualifiedResource(def)} ${goQuote(name)} is forbidden: ${why}`,
        resourceDetails(def, name, causes ? {causes} : {}),
      ),
    ),
  genericNotFound: () => new StatusError(statusBody(404, 'NotFound', 'the server could not find the requested resource', {})),
  methodNotAllowed: () =>
    new StatusError(statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {})),
  unsupportedMediaType: (accepted: string[], note = '') =>
    new StatusError(
      statusBody(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}${note}`,
        {},
      ),
    ),
  expired: (message: string, metadata?: KubeObject) => {
    const s = statusBody(410, 'Expired', message)
    if (metadata) s.metadata = metadata
    return new StatusError(s)
  },
  tooLargeResourceVersion: (requested: number, current: number) =>
    new StatusError(
      statusBody(504, 'Timeout', `Too large resource version: ${requested}, current: ${current}`, {
        causes: [{reason: 'ResourceVersionTooLarge', message: 'Too large resource version'}],
        retryAfterSeconds: 1,
      }),
      {'Retry-After': '1'},
    ),
  /** A non-Status Go error: 500 with no reason, exactly how the apiserver reports them. */
  unknown: (message: string, code = 500) => new StatusError(statusBody(code, undefined, message)),
  internal: (message: string) =>
    new StatusError(statusBody(500, 'InternalError', `Internal error occurred: ${message}`, {causes: [{message}]})),
  unauthorized: () => new StatusError(statusBody(401, 'Unauthorized', 'Unauthorized')),
  /** errors.NewGenericServerResponse(422, ...) as used for failed JSON patches. */
  genericInvalid: () => new StatusError(statusBody(422, 'Invalid', 'the server rejected our request due to an error in our request', {})),
}

/** An injected failure as the apiserver would send it: Status body, reason, Retry-After. */
export function faultError(opts: FaultOptions): StatusError {
  const code = opts.status ?? 500
  const retry = opts.retryAfter ?? (code === 429 || code === 503 ? 1 : undefined)
  const headers: Record<string, string> = retry !== undefined ? {'Retry-After': String(retry)} : {}
  const withRetry = (d: KubeObject): KubeObject => (retry !== undefined ? {...d, retryAfterSeconds: retry} : d)
  switch (code) {
    case 500: {
      const m = opts.message ?? 'injected failure'
      return new StatusError(statusBody(500, 'InternalError', `Internal error occurred: ${m}`, {causes: [{message: m}]}), headers)
    }
    case 503:
      return new StatusError(
        statusBody(503, 'ServiceUnavailable', opts.message ?? 'the server is currently unable to handle the request', withRetry({})),
        headers,
      )
    case 429:
      return new StatusError(
        statusBody(429, 'TooManyRequests', opts.message ?? 'Too many requests, please try again later.', withRetry({})),
        headers,
      )
    case 504:
      return new StatusError(
        statusBody(504, 'Timeout', opts.message ?? 'Timeout: request did not complete within the allotted timeout', withRetry({})),
        headers,
      )
    default: {
      const reasons: Record<number, string> = {
        400: 'BadRequest',
        401: 'Unauthorized',
        403: 'Forbidden',
        404: 'NotFound',
        405: 'MethodNotAllowed',
        409: 'Conflict',
        410: 'Expired',
        422: 'Invalid',
      }
      return new StatusError(
        statusBody(code, reasons[code], opts.message ?? http.STATUS_CODES[code] ?? 'injected failure', withRetry({})),
        headers,
      )
    }
  }
}

/** 409 Conflict for a stale resourceVersion, exactly as the apiserver words it (fault injection in front of the server). */
export function conflictError(group: string, resource: string, name: string): StatusError {
  return errors.conflict(
    {group, resource} as ResourceDefinition,
    name,
    'the object has been modified; please apply your changes to the latest version and try again',
  )
}

// field.Error formatting -----------------------------------------------------------------------

const FIELD_TYPE_STRING: Record<FieldError['type'], string> = {
  Required: 'Required value',
  Invalid: 'Invalid value',
  Forbidden: 'Forbidden',
  TooLong: 'Too long',
  NotSupported: 'Unsupported value',
  Duplicate: 'Duplicate value',
  TooMany: 'Too many',
}

function causeReason(t: FieldError['type']): string {
  return {
    Required: 'FieldValueRequired',
    Invalid: 'FieldValueInvalid',
    Forbidden: 'FieldValueForbidden',
    TooLong: 'FieldValueTooLong',
    NotSupported: 'FieldValueNotSupported',
    Duplicate: 'FieldValueDuplicate',
    TooMany: 'FieldValueTooMany',
  }[t]
}

function goQuote(s: string): string {
  return JSON.stringify(s)
}

function goValue(v: unknown): string {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'string') return goQuote(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (typeof v === 'object' && v !== null && 'goSyntax' in v) return String((v as {goSyntax: unknown}).goSyntax)
  return JSON.stringify(v)
}

/** Go's fmt `%+v` of a map[string]interface{} (sorted keys, unquoted), as used in some apiserver messages. */
function goMapFormat(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  if (Array.isArray(v)) return `[${v.map(goMapFormat).join(' ')}]`
  if (isObj(v)) {
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${goMapFormat(v[k])}`)
      .join(' ')}]`
  }
  return String(v)
}

function fieldErrorBody(e: FieldError): string {
  let s = FIELD_TYPE_STRING[e.type]
  if (!(e.type === 'Required' || e.type === 'Forbidden' || e.type === 'TooLong' || e.type === 'TooMany')) {
    s = `${s}: ${goValue(e.value)}`
  }
  if (e.detail) s += `: ${e.detail}`
  return s
}

function fieldErrorString(e: FieldError): string {
  return `${e.field}: ${fieldErrorBody(e)}`
}

const fe = {
  required: (field: string, detail = ''): FieldError => ({type: 'Required', field, detail}),
  invalid: (field: string, value: unknown, detail: string): FieldError => ({type: 'Invalid', field, value, detail}),
  forbidden: (field: string, detail: string): FieldError => ({type: 'Forbidden', field, detail}),
  tooLong: (field: string, max: number): FieldError => ({type: 'TooLong', field, detail: `must have at most ${max} bytes`}),
  notSupported: (field: string, value: unknown, supported: string[]): FieldError => ({
    type: 'NotSupported',
    field,
    value,
    detail: `supported values: ${supported.map(goQuote).join(', ')}`,
  }),
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T)
}

function isObj(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`
  if (isObj(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

function deepEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b)
}

function nowTime(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z')
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function parseGroupVersion(apiVersion: string): {group: string; version: string} {
  const i = apiVersion.indexOf('/')
  return i < 0 ? {group: '', version: apiVersion} : {group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1)}
}

function apiVersionOf(def: ResourceDefinition): string {
  return def.group ? `${def.group}/${def.version}` : def.version
}

function objKey(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`
}

function meta(o: KubeObject): KubeObject {
  if (!isObj(o.metadata)) o.metadata = {}
  return o.metadata as KubeObject
}

// Go's encoding/base64 StdEncoding.Decode (as used by encoding/json for []byte), ported so that
// acceptance and the reported offset match the apiserver: '\r' and '\n' are skipped, padding is
// mandatory, the URL-safe alphabet and other whitespace are rejected.
const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const B64_DECODE = (() => {
  const t = new Int16Array(256).fill(-1)
  for (let i = 0; i < B64_ALPHABET.length; i++) t[B64_ALPHABET.charCodeAt(i)] = i
  return t
})()

export function goBase64Decode(s: string): {ok: true; bytes: Buffer} | {ok: false; offset: number} {
  const src = Buffer.from(s, 'utf8')
  const out: number[] = []
  let si = 0
  const isNl = (c: number | undefined) => c === 0x0a || c === 0x0d
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0]
    let dlen = 4
    let trailing = -1
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return {ok: true, bytes: Buffer.from(out)}
        return {ok: false, offset: si - j}
      }
      const c = src[si]!
      si++
      const v = B64_DECODE[c]!
      if (v !== -1) {
        dbuf[j] = v
        continue
      }
      if (isNl(c)) {
        j--
        continue
      }
      if (c !== 0x3d) return {ok: false, offset: si - 1}
      if (j === 0 || j === 1) return {ok: false, offset: si - 1}
      if (j === 2) {
        while (si < src.length && isNl(src[si])) si++
        if (si === src.length) return {ok: false, offset: src.length}
        if (src[si] !== 0x3d) return {ok: false, offset: si - 1}
        si++
      }
      while (si < src.length && isNl(src[si])) si++
      if (si < src.length) trailing = si
      dlen = j
      break
    }
    const val = (dbuf[0]! << 18) | (dbuf[1]! << 12) | (dbuf[2]! << 6) | dbuf[3]!
    const b = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff]
    out.push(...b.slice(0, dlen - 1))
    if (trailing >= 0) return {ok: false, offset: trailing}
  }
  return {ok: true, bytes: Buffer.from(out)}
}

// Names, labels ------------------------------------------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/

const MSG_SUBDOMAIN =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
const MSG_LABEL =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"

function isDNS1123Subdomain(v: string): string[] {
  const errs: string[] = []
  if (v.length > 253) errs.push('must be no more than 253 characters')
  if (!DNS1123_SUBDOMAIN.test(v)) errs.push(MSG_SUBDOMAIN)
  return errs
}

function isDNS1123Label(v: string): string[] {
  const errs: string[] = []
  if (v.length > 63) errs.push('must be no more than 63 characters')
  if (!DNS1123_LABEL.test(v)) errs.push(MSG_LABEL)
  return errs
}

function isQualifiedName(v: string): string[] {
  const parts = v.split('/')
  let name = v
  const errs: string[] = []
  if (parts.length === 2) {
    const prefix = parts[0]!
    name = parts[1]!
    if (prefix.length === 0) errs.push('prefix part must be non-empty')
    else errs.push(...isDNS1123Subdomain(prefix).map((m) => `prefix part ${m}`))
  } else if (parts.length > 2) {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ]
  }
  if (name.length === 0) errs.push('name part must be non-empty')
  else if (name.length > 63) errs.push('name part must be no more than 63 characters')
  if (name.length > 0 && !QUALIFIED_NAME_PART.test(name)) {
    errs.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    )
  }
  return errs
}

function isLabelValue(v: string): string[] {
  const errs: string[] = []
  if (v.length > 63) errs.push('must be no more than 63 characters')
  if (!LABEL_VALUE.test(v)) {
    errs.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    )
  }
  return errs
}

function isConfigMapKey(v: string): string[] {
  const errs: string[] = []
  if (v.length > 253) errs.push('must be no more than 253 characters')
  if (!CONFIG_KEY.test(v)) {
    errs.push(
      "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    )
  }
  if (v === '.') errs.push("must not be '.'")
  else if (v === '..') errs.push("must not be '..'")
  else if (v.startsWith('..')) errs.push("must not start with '..'")
  return errs
}

// Times ---------------------------------------------------------------------------------------

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/

/** metav1.Time: RFC3339 (fractions accepted on input, dropped on output), always re-encoded in UTC. */
function normalizeTime(v: unknown): {value?: string | null; error?: string} {
  if (v === null || v === undefined) return {value: v as null | undefined}
  if (typeof v !== 'string') return {error: `json: cannot unmarshal ${jsonTypeName(v)} into Go value of type string`}
  if (!RFC3339.test(v)) return {error: `parsing time ${goQuote(v)} as "2006-01-02T15:04:05Z07:00": cannot parse ${goQuote(v)} as "2006"`}
  return {value: new Date(v).toISOString().replace(/\.\d+Z$/, 'Z')}
}

/** metav1.MicroTime: exactly RFC3339 with 6 fractional digits (a JS Date's 3 digits are rejected!). */
function normalizeMicroTime(v: unknown): {value?: string | null; error?: string} {
  if (v === null || v === undefined) return {value: v as null | undefined}
  if (typeof v !== 'string') return {error: `json: cannot unmarshal ${jsonTypeName(v)} into Go value of type string`}
  if (!RFC3339_MICRO.test(v)) {
    const rest = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.test(v) ? v.slice(19) : v
    const layoutPart = rest === v ? '"2006-01-02T15:04:05.000000Z07:00"' : '".000000"'
    return {error: `parsing time ${goQuote(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${goQuote(rest)} as ${layoutPart}`}
  }
  const d = new Date(v)
  const micro = /\.(\d{6})/.exec(v)![1]!
  return {value: `${d.toISOString().slice(0, 19)}.${micro}Z`}
}

function jsonTypeName(v: unknown): string {
  if (Array.isArray(v)) return 'array'
  if (v === null) return 'null'
  return typeof v === 'object' ? 'object' : typeof v
}

function getPath(o: KubeObject, path: string[]): unknown {
  let cur: unknown = o
  for (const p of path) {
    if (!isObj(cur)) return undefined
    cur = cur[p]
  }
  return cur
}

function setPath(o: KubeObject, path: string[], v: unknown): void {
  let cur: KubeObject = o
  for (const p of path.slice(0, -1)) {
    if (!isObj(cur[p])) return
    cur = cur[p] as KubeObject
  }
  const last = path[path.length - 1]!
  if (v === undefined || v === null) delete cur[last]
  else cur[last] = v
}

function decodeTimes(obj: KubeObject, times: string[][], microTimes: string[][]): string | undefined {
  for (const p of times) {
    const r = normalizeTime(getPath(obj, p))
    if (r.error) return r.error
    setPath(obj, p, r.value)
  }
  for (const p of microTimes) {
    const r = normalizeMicroTime(getPath(obj, p))
    if (r.error) return r.error
    setPath(obj, p, r.value)
  }
  return undefined
}

/** Sets an own property, whatever its name: Go maps hold `__proto__` like any other key. */
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, {value: v, enumerable: true, writable: true, configurable: true})
}

/** Typed objects omit nulls and empty optional collections; approximate that for built-ins. */
function pruneTyped(o: unknown): unknown {
  if (Array.isArray(o)) return o.map(pruneTyped)
  if (!isObj(o)) return o
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === null || v === undefined) continue
    put(out, k, pruneTyped(v))
  }
  return out
}

function pruneMeta(m: KubeObject): void {
  for (const k of ['labels', 'annotations']) if (isObj(m[k]) && Object.keys(m[k]).length === 0) delete m[k]
  for (const k of ['finalizers', 'ownerReferences', 'managedFields']) if (Array.isArray(m[k]) && m[k].length === 0) delete m[k]
  for (const k of Object.keys(m)) if (m[k] === null || m[k] === '') delete m[k]
}

const KNOWN_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
])

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

type LabelRequirement =
  {key: string; op: 'in' | 'notin'; values: string[]} | {key: string; op: 'exists' | '!'} | {key: string; op: 'gt' | 'lt'; n: number}

function parseLabelSelector(s: string | undefined): LabelRequirement[] {
  if (!s || !s.trim()) return []
  const terms: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of s) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      terms.push(cur)
      cur = ''
    } else cur += ch
  }
  terms.push(cur)
  const bad = (detail: string) => errors.badRequest(`unable to parse requirement: ${detail}`)
  const checkKey = (k: string) => {
    const e = isQualifiedName(k)
    if (e.length) throw bad(`key: Invalid value: ${goQuote(k)}: ${e.join('; ')}`)
  }
  const checkValue = (v: string) => {
    const e = isLabelValue(v)
    if (e.length) throw bad(`values[0][${v}]: Invalid value: ${goQuote(v)}: ${e.join('; ')}`)
  }
  return terms.map((raw): LabelRequirement => {
    const t = raw.trim()
    if (!t) throw errors.badRequest(`found '', expected: !, identifier, or 'end of string'`)
    let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(t)
    if (m) {
      const values = m[3]!
        .split(',')
        .map((v) => v.trim())
        .filter((v, i, a) => v !== '' || a.length === 1)
      checkKey(m[1]!)
      values.forEach(checkValue)
      return {key: m[1]!, op: m[2] as 'in' | 'notin', values}
    }
    m = /^!\s*([^=!<>\s]+)$/.exec(t)
    if (m) {
      checkKey(m[1]!)
      return {key: m[1]!, op: '!'}
    }
    m = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$/.exec(t)
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string]
      checkKey(key)
      if (op === '>' || op === '<') {
        const n = Number(value)
        if (!/^-?\d+$/.test(value)) throw bad(`for 'Gt', 'Lt' operators, the value must be an integer`)
        return {key, op: op === '>' ? 'gt' : 'lt', n}
      }
      checkValue(value)
      return {key, op: op === '!=' ? 'notin' : 'in', values: [value]}
    }
    m = /^([^=!<>\s(),]+)$/.exec(t)
    if (m) {
      checkKey(m[1]!)
      return {key: m[1]!, op: 'exists'}
    }
    throw bad(`${goQuote(t)}: unable to parse`)
  })
}

function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {}
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key)
    const v = l[r.key]
    switch (r.op) {
      case 'in':
        return has && r.values.includes(v!)
      case 'notin':
        return !has || !r.values.includes(v!)
      case 'exists':
        return has
      case '!':
        return !has
      case 'gt':
        return has && /^-?\d+$/.test(v!) && Number(v) > r.n
      case 'lt':
        return has && /^-?\d+$/.test(v!) && Number(v) < r.n
    }
    return false
  })
}

interface FieldRequirement {
  field: string
  value: string
  negate: boolean
}

function parseFieldSelector(s: string | undefined, def: ResourceDefinition, labelSelector: string | undefined): FieldRequirement[] {
  if (!s || !s.trim()) return []
  return s.split(',').map((raw) => {
    const t = raw.trim()
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(t)
    if (!m) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${t}'`)
    const field = m[1]!.trim()
    const known = field === 'metadata.name' || field === 'metadata.namespace' || (def.fieldSelectors && field in def.fieldSelectors)
    if (!known) {
      const gvr = `${def.group}/${def.version}, Resource=${def.resource}`
      const why = def.custom
        ? `${goQuote(field)} is not a known field selector: only "metadata.name", "metadata.namespace"`
        : `field label not supported: ${field}`
      throw errors.badRequest(
        `Unable to find ${goQuote(gvr)} that match label selector ${goQuote(labelSelector ?? '')}, field selector ${goQuote(s)}: ${why}`,
      )
    }
    return {field, value: m[3]!.trim(), negate: m[2] === '!='}
  })
}

function fieldValue(def: ResourceDefinition, obj: KubeObject, field: string): string {
  if (field === 'metadata.name') return String(obj.metadata?.name ?? '')
  if (field === 'metadata.namespace') return String(obj.metadata?.namespace ?? '')
  return String(def.fieldSelectors?.[field]?.(obj) ?? '')
}

// ---------------------------------------------------------------------------------------------
// Patches
// ---------------------------------------------------------------------------------------------

function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch)
  const out: KubeObject = isObj(target) ? {...target} : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = jsonMergePatch(out[k], v)
  }
  return out
}

/**
 * Strategic merge patch, good enough for the types served here: maps merge like JSON merge patch,
 * `$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/<f>` are honoured,
 * `$setElementOrder/<f>` is ignored, metadata.finalizers merges as a set and
 * metadata.ownerReferences merges by uid; every other list is replaced (true for Secret, Lease,
 * Event and Namespace, which have no other merge-keyed lists that matter here).
 */
function strategicMergePatch(target: unknown, patch: unknown, path: string[] = []): unknown {
  if (!isObj(patch)) return clone(patch)
  if (patch.$patch === 'replace') {
    const {$patch: _ignored, ...rest} = patch
    return clone(rest)
  }
  const out: KubeObject = isObj(target) ? {...target} : {}
  const retain = Array.isArray(patch.$retainKeys) ? (patch.$retainKeys as string[]) : undefined
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length)
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as unknown[]).filter((x) => !v.some((y) => deepEqual(x, y)))
      continue
    }
    if (v === null) {
      delete out[k]
      continue
    }
    if (isObj(v) && v.$patch === 'delete') {
      delete out[k]
      continue
    }
    const p = [...path, k].join('.')
    if (Array.isArray(v) && p === 'metadata.finalizers') {
      const cur = Array.isArray(out[k]) ? [...(out[k] as unknown[])] : []
      for (const x of v) if (!cur.some((y) => deepEqual(x, y))) cur.push(x)
      out[k] = cur
      continue
    }
    if (Array.isArray(v) && p === 'metadata.ownerReferences') {
      let cur = Array.isArray(out[k]) ? [...(out[k] as KubeObject[])] : []
      for (const item of v as KubeObject[]) {
        const idx = cur.findIndex((c) => c.uid === item.uid)
        if (item.$patch === 'delete') {
          cur = cur.filter((c) => c.uid !== item.uid)
        } else if (idx >= 0) {
          cur[idx] = jsonMergePatch(cur[idx], item) as KubeObject
        } else cur.push(clone(item))
      }
      out[k] = cur
      continue
    }
    out[k] = strategicMergePatch(out[k], v, [...path, k])
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k]
  return out
}

class JsonPatchApplyError extends Error {}

function decodePointer(ptr: string): string[] {
  if (ptr === '') return []
  if (!ptr.startsWith('/')) throw new JsonPatchApplyError(`JSON pointer must start with "/": ${ptr}`)
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function applyJsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch')
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string') throw errors.badRequest('Unexpected kind: unknown')
    if (typeof op.path !== 'string') throw errors.badRequest(`${op.op} operation missing path`)
  }
  let root = clone(doc)
  const container = (path: string[]): {parent: KubeObject | unknown[]; key: string} => {
    if (path.length === 0) throw new JsonPatchApplyError('cannot operate on the document root')
    let cur: unknown = root
    for (const p of path.slice(0, -1)) {
      if (Array.isArray(cur)) {
        const i = Number(p)
        if (!/^\d+$/.test(p) || i >= cur.length) throw new JsonPatchApplyError(`doc is missing path: ${p}`)
        cur = cur[i]
      } else if (isObj(cur)) {
        if (!(p in cur)) throw new JsonPatchApplyError(`doc is missing path: ${p}`)
        cur = cur[p]
      } else throw new JsonPatchApplyError(`doc is missing path: ${p}`)
    }
    if (!Array.isArray(cur) && !isObj(cur)) throw new JsonPatchApplyError('doc is missing path')
    return {parent: cur, key: path[path.length - 1]!}
  }
  const get = (path: string[]): unknown => {
    let cur: unknown = root
    for (const p of path) {
      if (Array.isArray(cur) && /^\d+$/.test(p) && Number(p) < cur.length) cur = cur[Number(p)]
      else if (isObj(cur) && p in cur) cur = cur[p]
      else throw new JsonPatchApplyError(`doc is missing key: /${path.join('/')}`)
    }
    return cur
  }
  const add = (path: string[], value: unknown) => {
    if (path.length === 0) {
      root = clone(value)
      return
    }
    const {parent, key} = container(path)
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key)
      if (!(key === '-' || /^\d+$/.test(key)) || i > parent.length) throw new JsonPatchApplyError(`index out of bounds: ${key}`)
      parent.splice(i, 0, clone(value))
    } else parent[key] = clone(value)
  }
  const remove = (path: string[]): unknown => {
    const {parent, key} = container(path)
    if (Array.isArray(parent)) {
      const i = Number(key)
      if (!/^\d+$/.test(key) || i >= parent.length)
        throw new JsonPatchApplyError(`remove operation does not apply: doc is missing key: ${key}`)
      return parent.splice(i, 1)[0]
    }
    if (!(key in parent)) throw new JsonPatchApplyError(`remove operation does not apply: doc is missing key: ${key}`)
    const v = parent[key]
    delete parent[key]
    return v
  }
  for (const op of ops as KubeObject[]) {
    const path = decodePointer(op.path as string)
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw errors.badRequest('add operation missing value')
        add(path, op.value)
        break
      case 'remove':
        remove(path)
        break
      case 'replace':
        if (!('value' in op)) throw errors.badRequest('replace operation missing value')
        if (path.length === 0) {
          root = clone(op.value)
          break
        }
        get(path)
        remove(path)
        add(path, op.value)
        break
      case 'move': {
        if (typeof op.from !== 'string') throw errors.badRequest('move operation missing from')
        const v = remove(decodePointer(op.from))
        add(path, v)
        break
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw errors.badRequest('copy operation missing from')
        add(path, get(decodePointer(op.from)))
        break
      }
      case 'test': {
        let v: unknown
        try {
          v = get(path)
        } catch {
          v = undefined
        }
        if (!deepEqual(v, op.value)) throw new JsonPatchApplyError(`testing value ${op.path} failed: test failed`)
        break
      }
      default:
        throw errors.badRequest(`Unexpected kind: ${String(op.op)}`)
    }
  }
  return root
}

/** What the apiserver's RequestInfoFactory makes of a request (verb, group, version, resource, subresource, namespace, name). */
export function resolveRequest(method: string, path: string, query: Record<string, string>): RequestInfo {
  const info: RequestInfo = {method, path, query, verb: method.toLowerCase(), isResourceRequest: false}
  const segs = path
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s)
      } catch {
        return s
      }
    })
  let rest: string[]
  if (segs[0] === 'api' && segs.length >= 3) {
    info.apiGroup = ''
    info.apiVersion = segs[1]
    rest = segs.slice(2)
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    info.apiGroup = segs[1]
    info.apiVersion = segs[2]
    rest = segs.slice(3)
  } else return info
  info.isResourceRequest = true
  let watchPrefix = false
  if (rest[0] === 'watch') {
    watchPrefix = true
    rest = rest.slice(1)
  }
  let parts = rest
  if (rest[0] === 'namespaces' && rest.length > 1) {
    if (rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      info.namespace = rest[1]
      parts = rest.slice(2)
    }
  }
  info.resource = parts[0]
  if (parts.length >= 2) info.name = parts[1]
  if (parts.length >= 3) info.subresource = parts.slice(2).join('/')
  const watchParam = query.watch
  const isWatch = watchPrefix || (watchParam !== undefined && !['false', '0'].includes(watchParam.toLowerCase()))
  switch (method) {
    case 'GET':
    case 'HEAD':
      info.verb = info.name && !watchPrefix ? 'get' : isWatch ? 'watch' : 'list'
      if (watchPrefix && info.name) info.verb = 'watch'
      break
    case 'POST':
      info.verb = 'create'
      break
    case 'PUT':
      info.verb = 'update'
      break
    case 'PATCH':
      info.verb = 'patch'
      break
    case 'DELETE':
      info.verb = info.name ? 'delete' : 'deletecollection'
      break
    default:
      info.verb = method.toLowerCase()
  }
  return info
}

// ---------------------------------------------------------------------------------------------
// Built-in resource definitions
// ---------------------------------------------------------------------------------------------

function decodeSecret(obj: KubeObject): string | undefined {
  if (obj.data !== undefined && obj.data !== null && !isObj(obj.data)) {
    return `json: cannot unmarshal ${jsonTypeName(obj.data)} into Go struct field Secret.data of type map[string][]uint8`
  }
  if (obj.stringData !== undefined && obj.stringData !== null && !isObj(obj.stringData)) {
    return `json: cannot unmarshal ${jsonTypeName(obj.stringData)} into Go struct field Secret.stringData of type map[string]string`
  }
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries((obj.data as KubeObject | undefined) ?? {})) {
    if (v === null) {
      put(data, k, '')
      continue
    }
    if (typeof v !== 'string') return `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field Secret.data of type []uint8`
    const r = goBase64Decode(v)
    if (!r.ok) return `illegal base64 data at input byte ${r.offset}`
    put(data, k, r.bytes.toString('base64')) // re-encoded canonically, as the apiserver stores []byte
  }
  // v1 -> internal conversion: stringData entries overwrite data entries and stringData disappears.
  for (const [k, v] of Object.entries((obj.stringData as KubeObject | undefined) ?? {})) {
    if (typeof v !== 'string') return `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field Secret.stringData of type string`
    put(data, k, Buffer.from(v, 'utf8').toString('base64'))
  }
  delete obj.stringData
  if (Object.keys(data).length) obj.data = data
  else delete obj.data
  if (obj.type === undefined || obj.type === null || obj.type === '') obj.type = 'Opaque' // SetDefaults_Secret
  if (obj.immutable === null) delete obj.immutable
  return undefined
}

const MAX_SECRET_SIZE = 1024 * 1024

function validateSecret(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: FieldError[] = []
  if (old) {
    if (obj.type !== old.type) errs.push(fe.invalid('type', obj.type, 'field is immutable'))
    if (old.immutable === true) {
      if (obj.immutable !== true) errs.push(fe.forbidden('immutable', 'field is immutable when `immutable` is set'))
      if (!deepEqual(obj.data ?? {}, old.data ?? {})) errs.push(fe.forbidden('data', 'field is immutable when `immutable` is set'))
    }
  }
  const data = (obj.data ?? {}) as Record<string, string>
  let total = 0
  for (const [k, v] of Object.entries(data)) {
    for (const m of isConfigMapKey(k)) errs.push(fe.invalid(`data[${k}]`, k, m))
    total += Buffer.from(v, 'base64').length
  }
  if (total > MAX_SECRET_SIZE) errs.push(fe.tooLong('data', MAX_SECRET_SIZE))
  const has = (k: string) => Object.prototype.hasOwnProperty.call(data, k)
  const jsonOk = (k: string) => {
    try {
      const v: unknown = JSON.parse(Buffer.from(data[k]!, 'base64').toString('utf8'))
      return isObj(v)
    } catch {
      return false
    }
  }
  switch (obj.type) {
    case 'kubernetes.io/service-account-token':
      if (!obj.metadata?.annotations?.['kubernetes.io/service-account.name']) {
        errs.push(fe.required('metadata.annotations[kubernetes.io/service-account.name]'))
      }
      break
    case 'kubernetes.io/dockercfg':
      if (!has('.dockercfg')) errs.push(fe.required('data[.dockercfg]'))
      else if (!jsonOk('.dockercfg')) errs.push(fe.invalid('data[.dockercfg]', '<secret contents redacted>', 'invalid JSON'))
      break
    case 'kubernetes.io/dockerconfigjson':
      if (!has('.dockerconfigjson')) errs.push(fe.required('data[.dockerconfigjson]'))
      else if (!jsonOk('.dockerconfigjson')) errs.push(fe.invalid('data[.dockerconfigjson]', '<secret contents redacted>', 'invalid JSON'))
      break
    case 'kubernetes.io/basic-auth':
      if (!has('username') && !has('password')) errs.push(fe.required('data[username]'), fe.required('data[password]'))
      break
    case 'kubernetes.io/ssh-auth':
      if (!data['ssh-privatekey']) errs.push(fe.required('data[ssh-privatekey]'))
      break
    case 'kubernetes.io/tls':
      if (!has('tls.crt')) errs.push(fe.required('data[tls.crt]'))
      if (!has('tls.key')) errs.push(fe.required('data[tls.key]'))
      break
    default:
  }
  return errs
}

const CORE_EVENT_TIMES = [['firstTimestamp'], ['lastTimestamp']]
const CORE_EVENT_MICRO = [['eventTime'], ['series', 'lastObservedTime']]
const V1_EVENT_TIMES = [['deprecatedFirstTimestamp'], ['deprecatedLastTimestamp']]

/** core/v1 Event <-> events.k8s.io/v1 Event field mapping (they share storage in the apiserver). */
const EVENT_FIELD_MAP: Array<[core: string, eventsV1: string]> = [
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['reportingComponent', 'reportingController'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
]

function coreEventToEventsV1(o: KubeObject): KubeObject {
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    const m = EVENT_FIELD_MAP.find(([c]) => c === k)
    out[m ? m[1] : k] = v
  }
  out.apiVersion = 'events.k8s.io/v1'
  out.kind = 'Event'
  return out
}

function eventsV1ToCoreEvent(o: KubeObject): KubeObject {
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    const m = EVENT_FIELD_MAP.find(([, e]) => e === k)
    out[m ? m[0] : k] = v
  }
  out.apiVersion = 'v1'
  out.kind = 'Event'
  return out
}

/** ValidateEventCreate/Update (storage = core/v1 field names; `strict` = request via events.k8s.io/v1). */
function validateEvent(obj: KubeObject, old: KubeObject | undefined, def: ResourceDefinition): FieldError[] {
  const errs: FieldError[] = []
  const strict = def.group === 'events.k8s.io'
  const ns = obj.metadata?.namespace ?? ''
  const involvedNs: string = obj.involvedObject?.namespace ?? ''
  const reportingField = strict ? 'reportingController' : 'reportingComponent'
  if (!obj.eventTime) {
    if (involvedNs === '') {
      if (ns !== '' && ns !== 'default') errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
    } else if (ns !== involvedNs) errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
  } else {
    if (involvedNs === '' && ns !== 'default' && ns !== 'kube-system') {
      errs.push(fe.invalid('involvedObject.namespace', involvedNs, 'does not match event.namespace'))
    }
    if (!obj.reportingComponent) errs.push(fe.required(reportingField))
    if (!obj.reportingInstance) errs.push(fe.required('reportingInstance'))
    if (!obj.action) errs.push(fe.required('action'))
    if (!obj.reason) errs.push(fe.required('reason'))
  }
  if (strict && !old) {
    if (!obj.eventTime) errs.push(fe.required('eventTime'))
    if (obj.type !== 'Normal' && obj.type !== 'Warning') errs.push(fe.invalid('type', '', `has invalid value: ${obj.type ?? ''}`))
    if (obj.firstTimestamp) errs.push(fe.invalid('deprecatedFirstTimestamp', '', 'needs to be unset'))
    if (obj.lastTimestamp) errs.push(fe.invalid('deprecatedLastTimestamp', '', 'needs to be unset'))
    if (obj.count) errs.push(fe.invalid('deprecatedCount', '', 'needs to be unset'))
    if (obj.source?.component || obj.source?.host) errs.push(fe.invalid('deprecatedSource', '', 'needs to be unset'))
    if (typeof obj.message === 'string' && obj.message.length > 1024) errs.push(fe.tooLong('note', 1024))
  }
  return errs
}

const EVENT_FIELD_SELECTORS: Record<string, (o: KubeObject) => string | undefined> = {
  'involvedObject.kind': (o) => o.involvedObject?.kind,
  'involvedObject.namespace': (o) => o.involvedObject?.namespace,
  'involvedObject.name': (o) => o.involvedObject?.name,
  'involvedObject.uid': (o) => o.involvedObject?.uid,
  'involvedObject.apiVersion': (o) => o.involvedObject?.apiVersion,
  'involvedObject.resourceVersion': (o) => o.involvedObject?.resourceVersion,
  'involvedObject.fieldPath': (o) => o.involvedObject?.fieldPath,
  reason: (o) => o.reason,
  reportingComponent: (o) => o.reportingComponent,
  source: (o) => o.source?.component,
  type: (o) => o.type,
}

const EVENTS_V1_FIELD_SELECTORS: Record<string, (o: KubeObject) => string | undefined> = {
  'regarding.kind': (o) => o.regarding?.kind,
  'regarding.namespace': (o) => o.regarding?.namespace,
  'regarding.name': (o) => o.regarding?.name,
  'regarding.uid': (o) => o.regarding?.uid,
  'regarding.apiVersion': (o) => o.regarding?.apiVersion,
  'regarding.resourceVersion': (o) => o.regarding?.resourceVersion,
  'regarding.fieldPath': (o) => o.regarding?.fieldPath,
  reason: (o) => o.reason,
  reportingController: (o) => o.reportingController,
  type: (o) => o.type,
}

function validateLease(obj: KubeObject): FieldError[] {
  const errs: FieldError[] = []
  const spec = (obj.spec ?? {}) as KubeObject
  if (spec.leaseDurationSeconds !== undefined && !(spec.leaseDurationSeconds > 0)) {
    errs.push(fe.invalid('spec.leaseDurationSeconds', spec.leaseDurationSeconds, 'must be greater than 0'))
  }
  if (spec.leaseTransitions !== undefined && spec.leaseTransitions < 0) {
    errs.push(fe.invalid('spec.leaseTransitions', spec.leaseTransitions, 'must be greater than or equal to 0'))
  }
  return errs
}

export const SEALED_SECRET_DEFINITION: ResourceDefinition = {
  group: 'kseal.dev',
  version: 'v1',
  resource: 'sealedsecrets',
  kind: 'SealedSecret',
  singular: 'sealedsecret',
  namespaced: true,
  shortNames: ['sealed'],
  statusSubresource: true,
  custom: true,
}

/** kseal's ExternalSecret CRDs (deploy/ installs them with the SealedSecret's). */
export const EXTERNAL_DEFINITIONS: ResourceDefinition[] = [
  {resource: 'externalsecrets', kind: 'ExternalSecret', singular: 'externalsecret', namespaced: true, shortNames: ['es']},
  {resource: 'secretstores', kind: 'SecretStore', singular: 'secretstore', namespaced: true, shortNames: ['ss']},
  {resource: 'clustersecretstores', kind: 'ClusterSecretStore', singular: 'clustersecretstore', namespaced: false, shortNames: ['css']},
].map((d) => ({group: 'kseal.dev', version: 'v1', statusSubresource: true, custom: true, ...d}))

export function builtinResources(): ResourceDefinition[] {
  return [
    {
      group: '',
      version: 'v1',
      resource: 'secrets',
      kind: 'Secret',
      singular: 'secret',
      namespaced: true,
      knownFields: ['apiVersion', 'kind', 'metadata', 'data', 'stringData', 'type', 'immutable'],
      fieldSelectors: {type: (o) => o.type},
      decode: decodeSecret,
      validate: (o, old) => validateSecret(o, old),
    },
    {
      group: '',
      version: 'v1',
      resource: 'namespaces',
      kind: 'Namespace',
      singular: 'namespace',
      namespaced: false,
      shortNames: ['ns'],
      statusSubresource: true,
      returnDeletedObject: true,
      nameValidation: 'label',
      knownFields: ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
      fieldSelectors: {'status.phase': (o) => o.status?.phase},
      prepareForCreate: (o) => {
        o.spec = {...(o.spec ?? {}), finalizers: ['kubernetes']}
        o.status = {phase: 'Active'}
        meta(o).labels = {...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name}
      },
      prepareForUpdate: (o, old) => {
        o.spec = {...(o.spec ?? {}), finalizers: clone(old.spec?.finalizers)}
        if (!o.spec.finalizers) delete o.spec.finalizers
        meta(o).labels = {...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name}
      },
    },
    {
      group: '',
      version: 'v1',
      resource: 'events',
      kind: 'Event',
      singular: 'event',
      namespaced: true,
      shortNames: ['ev'],
      allowCreateOnUpdate: true,
      storageKey: 'events',
      knownFields: [
        'apiVersion',
        'kind',
        'metadata',
        'involvedObject',
        'reason',
        'message',
        'source',
        'firstTimestamp',
        'lastTimestamp',
        'count',
        'type',
        'eventTime',
        'series',
        'action',
        'related',
        'reportingComponent',
        'reportingInstance',
      ],
      fieldSelectors: EVENT_FIELD_SELECTORS,
      decode: (o) => decodeTimes(o, CORE_EVENT_TIMES, CORE_EVENT_MICRO),
      validate: validateEvent,
    },
    {
      group: 'events.k8s.io',
      version: 'v1',
      resource: 'events',
      kind: 'Event',
      singular: 'event',
      namespaced: true,
      shortNames: ['ev'],
      allowCreateOnUpdate: true,
      storageKey: 'events',
      knownFields: [
        'apiVersion',
        'kind',
        'metadata',
        'eventTime',
        'series',
        'reportingController',
        'reportingInstance',
        'action',
        'reason',
        'regarding',
        'related',
        'note',
        'type',
        'deprecatedSource',
        'deprecatedFirstTimestamp',
        'deprecatedLastTimestamp',
        'deprecatedCount',
      ],
      fieldSelectors: EVENTS_V1_FIELD_SELECTORS,
      toStorage: eventsV1ToCoreEvent,
      fromStorage: coreEventToEventsV1,
      decode: (o) => decodeTimes(o, V1_EVENT_TIMES, CORE_EVENT_MICRO),
      validate: validateEvent,
    },
    {
      group: 'coordination.k8s.io',
      version: 'v1',
      resource: 'leases',
      kind: 'Lease',
      singular: 'lease',
      namespaced: true,
      allowCreateOnUpdate: true,
      knownFields: ['apiVersion', 'kind', 'metadata', 'spec'],
      decode: (o) =>
        decodeTimes(
          o,
          [],
          [
            ['spec', 'acquireTime'],
            ['spec', 'renewTime'],
          ],
        ),
      validate: validateLease,
    },
    SEALED_SECRET_DEFINITION,
    ...EXTERNAL_DEFINITIONS,
    SERVICE_ACCOUNT_DEFINITION,
  ]
}

// ---------------------------------------------------------------------------------------------
// Server internals
// ---------------------------------------------------------------------------------------------

type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface HistoryEvent {
  type: WatchEventType
  rv: number
  obj: KubeObject
  prev?: KubeObject
}

interface Bucket {
  key: string
  objects: Map<string, KubeObject>
  history: HistoryEvent[]
  /** Every event with rv > compactedRv is still in `history`. */
  compactedRv: number
}

interface Def extends ResourceDefinition {
  storageKey: string
  allowCreateOnUpdate: boolean
  allowUnconditionalUpdate: boolean
  returnDeletedObject: boolean
  generation: boolean
  custom: boolean
  statusSubresource: boolean
}

interface Watcher {
  id: number
  def: Def
  bucket: Bucket
  namespace?: string
  labels: LabelRequirement[]
  fields: FieldRequirement[]
  res: ServerResponse
  afterRv: number
  allowBookmarks: boolean
  timers: NodeJS.Timeout[]
  closed: boolean
}

interface Fault {
  remaining: number
  opts: FaultOptions
}

interface DeleteOptions {
  propagationPolicy?: string
  preconditions?: {uid?: string; resourceVersion?: string}
  dryRun?: boolean
}

const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
}

const GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

class Server implements K8sApiServer {
  latencyMs: number
  readonly requests: RequestRecord[] = []
  private http: http.Server
  private sockets = new Set<Socket>()
  connectionsAccepted = 0
  private defs: Def[] = []
  private buckets = new Map<string, Bucket>()
  private rv: number
  private watchers = new Set<Watcher>()
  private nextWatcherId = 1
  private faults: Fault[] = []
  private gcTimer: NodeJS.Timeout | undefined
  private gcWaiters: Array<() => void> = []
  private closed = false
  private readonly tokens: ServiceAccountTokens
  private opts: Required<Omit<K8sApiServerOptions, 'token' | 'resources' | 'namespaces' | 'port' | 'host' | 'latencyMs' | 'tokens'>> & {
    token?: string
  }
  private _port = 0
  private host: string

  constructor(options: K8sApiServerOptions) {
    this.latencyMs = options.latencyMs ?? 0
    this.host = options.host ?? '127.0.0.1'
    this.rv = options.initialResourceVersion ?? 1000
    this.opts = {
      token: options.token,
      historySize: options.historySize ?? 500,
      requireNamespaces: options.requireNamespaces ?? false,
      gc: options.gc ?? true,
      gcDelayMs: options.gcDelayMs ?? 0,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      tooLargeResourceVersionWaitMs: options.tooLargeResourceVersionWaitMs ?? 3000,
      initialResourceVersion: this.rv,
      version: options.version ?? {major: '1', minor: '31'},
    }
    for (const d of [...builtinResources(), ...(options.resources ?? [])]) this.registerResource(d)
    this.tokens = new ServiceAccountTokens(
      {
        url: () => this.url,
        getObject: (apiVersion, kind, ns, name) => this.getObject(apiVersion, kind, ns, name),
        serves: (apiVersion, kind) =>
          this.defs.some((d) => apiVersionOf(d) === apiVersion && (d.kind.toLowerCase() === kind.toLowerCase() || d.resource === kind)),
        errors,
        status: (code, reason, message, details) => new StatusError(statusBody(code, reason, message, details)),
      },
      options.tokens,
    )
    for (const ns of options.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    }
    this.http = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // Last resort: never leave a request hanging.
        if (!res.headersSent) {
          this.sendError(res, errors.internal(err instanceof Error ? err.message : String(err)))
        } else res.destroy()
      })
    })
    this.http.on('connection', (s: Socket) => {
      this.connectionsAccepted++
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(port, this.host, () => resolve())
    })
    this._port = (this.http.address() as AddressInfo).port
  }

  get port(): number {
    return this._port
  }

  get url(): string {
    return `http://${this.host}:${this._port}`
  }

  get resourceVersion(): string {
    return String(this.rv)
  }

  // --- lifecycle --------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const w of [...this.watchers]) this.endWatch(w, true)
    if (this.gcTimer) clearTimeout(this.gcTimer)
    this.gcTimer = undefined
    for (const r of this.gcWaiters.splice(0)) r()
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve())
      this.http.closeAllConnections()
      for (const s of this.sockets) s.destroy()
    })
  }

  kubeConfig(opts: KubeconfigOptions = {}): KubeConfig {
    const kc = new KubeConfig()
    kc.loadFromString(this.kubeconfigYaml(opts))
    return kc
  }

  async writeKubeconfig(path: string, opts: KubeconfigOptions = {}): Promise<void> {
    await writeFile(path, this.kubeconfigYaml(opts), {mode: 0o600})
  }

  private kubeconfigYaml(opts: KubeconfigOptions): string {
    const context: KubeObject = {cluster: 'kseal-test', user: 'kseal-test'}
    if (opts.namespace) context.namespace = opts.namespace
    return YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: 'kseal-test', cluster: {server: this.url, 'insecure-skip-tls-verify': true}}],
      users: [{name: 'kseal-test', user: {token: opts.token ?? this.opts.token ?? 'kseal-test-token'}}],
      contexts: [{name: 'kseal-test', context}],
      'current-context': 'kseal-test',
      preferences: {},
    })
  }

  // --- resource registry ------------------------------------------------------------------

  registerResource(input: ResourceDefinition): void {
    const custom = input.custom ?? false
    const def: Def = {
      ...input,
      custom,
      statusSubresource: input.statusSubresource ?? false,
      storageKey: input.storageKey ?? `${input.group}/${input.resource}`,
      allowCreateOnUpdate: input.allowCreateOnUpdate ?? false,
      allowUnconditionalUpdate: input.allowUnconditionalUpdate ?? !custom,
      returnDeletedObject: input.returnDeletedObject ?? custom,
      generation: input.generation ?? custom,
    }
    this.defs = this.defs.filter((d) => !(d.group === def.group && d.version === def.version && d.resource === def.resource))
    this.defs.push(def)
    if (!this.buckets.has(def.storageKey)) {
      this.buckets.set(def.storageKey, {key: def.storageKey, objects: new Map(), history: [], compactedRv: this.rv})
    }
  }

  private findDef(group: string, version: string, resource: string): Def | undefined {
    return this.defs.find((d) => d.group === group && d.version === version && d.resource === resource)
  }

  private defFor(apiVersion: string, kindOrResource: string): Def {
    const {group, version} = parseGroupVersion(apiVersion)
    const lc = kindOrResource.toLowerCase()
    const d = this.defs.find(
      (x) => x.group === group && x.version === version && (x.kind === kindOrResource || x.resource === lc || x.singular === lc),
    )
    if (!d) throw new Error(`k8s-api-server: unknown resource ${apiVersion} ${kindOrResource}`)
    return d
  }

  /** Owner lookup for the GC: group + kind, any served version. */
  private defForOwner(apiVersion: string, kind: string): Def | undefined {
    const {group} = parseGroupVersion(apiVersion)
    return this.defs.find((d) => d.group === group && d.kind === kind)
  }

  private bucket(def: Def): Bucket {
    return this.buckets.get(def.storageKey)!
  }

  private toView(def: Def, stored: KubeObject): KubeObject {
    const o = def.fromStorage ? def.fromStorage(clone(stored)) : clone(stored)
    o.apiVersion = apiVersionOf(def)
    o.kind = def.kind
    return o
  }

  private toViewOrdered(def: Def, stored: KubeObject): KubeObject {
    const v = this.toView(def, stored)
    const {apiVersion, kind, metadata, ...rest} = v
    return {kind, apiVersion, metadata, ...rest}
  }

  private toStorage(def: Def, obj: KubeObject): KubeObject {
    return def.toStorage ? def.toStorage(obj) : obj
  }

  // --- direct store access (tests) -----------------------------------------------------------

  getObject<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kindOrResource: string,
    namespace: string | undefined,
    name: string,
  ): T | undefined {
    const def = this.defFor(apiVersion, kindOrResource)
    const o = this.bucket(def).objects.get(objKey(def.namespaced ? namespace : '', name))
    return o ? (this.toViewOrdered(def, o) as T) : undefined
  }

  listObjects<T extends KubeObject = KubeObject>(apiVersion: string, kindOrResource: string, namespace?: string): T[] {
    const def = this.defFor(apiVersion, kindOrResource)
    return this.sortedObjects(this.bucket(def).objects)
      .filter((o) => !namespace || o.metadata?.namespace === namespace)
      .map((o) => this.toViewOrdered(def, o) as T)
  }

  putObject<T extends KubeObject = KubeObject>(input: T): T {
    if (typeof input.apiVersion !== 'string' || typeof input.kind !== 'string')
      throw new Error('putObject: apiVersion and kind are required')
    const def = this.defFor(input.apiVersion, input.kind)
    let obj = clone(input) as KubeObject
    if (def.decode) {
      const err = def.decode(obj)
      if (err) throw new Error(`putObject: ${err}`)
    }
    obj = this.toStorage(def, obj)
    const m = meta(obj)
    if (!m.name) throw new Error('putObject: metadata.name is required')
    if (def.namespaced) m.namespace = m.namespace || 'default'
    else delete m.namespace
    const b = this.bucket(def)
    const key = objKey(m.namespace, m.name)
    const existing = b.objects.get(key)
    m.uid = m.uid ?? existing?.metadata.uid ?? randomUUID()
    m.creationTimestamp = m.creationTimestamp ?? existing?.metadata.creationTimestamp ?? nowTime()
    if (def.generation && m.generation === undefined) {
      if (!existing) m.generation = 1
      else {
        m.generation = existing.metadata.generation ?? 1
        if (this.specChanged(def, obj, existing)) m.generation += 1
      }
    }
    if (!existing && def.kind === 'Namespace' && def.group === '') def.prepareForCreate?.(obj)
    const stored = this.commit(b, existing ? 'MODIFIED' : 'ADDED', obj, existing)
    return this.toViewOrdered(def, stored) as T
  }

  deleteObject(apiVersion: string, kindOrResource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.defFor(apiVersion, kindOrResource)
    const b = this.bucket(def)
    const existing = b.objects.get(objKey(def.namespaced ? namespace : '', name))
    if (!existing) return undefined
    const gone = this.commit(b, 'DELETED', clone(existing), existing)
    return this.toViewOrdered(def, gone)
  }

  // --- observation & fault injection -------------------------------------------------------

  private filterRequests(filter?: RequestFilter): RequestRecord[] {
    if (!filter) return [...this.requests]
    if (typeof filter === 'function') return this.requests.filter(filter)
    return this.requests.filter((r) =>
      (Object.keys(filter) as Array<keyof typeof filter>).every((k) => filter[k] === undefined || r[k] === filter[k]),
    )
  }

  countRequests(filter?: RequestFilter): number {
    return this.filterRequests(filter).length
  }

  findRequests(filter?: RequestFilter): RequestRecord[] {
    return this.filterRequests(filter)
  }

  clearRequests(): void {
    this.requests.length = 0
  }

  failNext(n: number, opts: FaultOptions = {}): void {
    if (n > 0) this.faults.push({remaining: n, opts})
  }

  clearFaults(): void {
    this.faults = []
  }

  private watchersMatching(filter: WatchFilter = {}): Watcher[] {
    return [...this.watchers].filter(
      (w) =>
        (filter.resource === undefined || w.def.resource === filter.resource) &&
        (filter.apiGroup === undefined || w.def.group === filter.apiGroup) &&
        (filter.namespace === undefined || w.namespace === filter.namespace),
    )
  }

  openWatches(filter?: WatchFilter): number {
    return this.watchersMatching(filter).length
  }

  async waitForWatches(count: number, filter?: WatchFilter, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.openWatches(filter) < count) {
      if (Date.now() > deadline) {
        throw new Error(
          `k8s-api-server: timed out waiting for ${count} watch(es) ${JSON.stringify(filter ?? {})}, have ${this.openWatches(filter)}`,
        )
      }
      await sleep(5)
    }
  }

  /** Destroy the sockets of open watches (abrupt connection loss). */
  dropWatches(filter?: WatchFilter): number {
    const ws = this.watchersMatching(filter)
    for (const w of ws) this.endWatch(w, true)
    return ws.length
  }

  /** End open watches cleanly, as when timeoutSeconds elapses (clients re-watch from their last RV). */
  closeWatches(filter?: WatchFilter): number {
    const ws = this.watchersMatching(filter)
    for (const w of ws) this.endWatch(w, false)
    return ws.length
  }

  /**
   * Forget the watch history (like an apiserver restart / etcd compaction) and end open watches
   * with an `ERROR` 410 Expired event, so clients must re-list.
   */
  expireWatches(filter?: WatchFilter): number {
    this.compact(filter)
    const ws = this.watchersMatching(filter)
    for (const w of ws) {
      this.writeEvent(w, 'ERROR', this.expiredStatus(w.afterRv, w.bucket.compactedRv))
      this.endWatch(w, false)
    }
    return ws.length
  }

  /** Forget history: resuming a watch (or a continue token / Exact list) from an older RV now gets 410. */
  compact(filter: WatchFilter = {}): void {
    for (const d of this.defs) {
      if (filter.resource !== undefined && d.resource !== filter.resource) continue
      if (filter.apiGroup !== undefined && d.group !== filter.apiGroup) continue
      const b = this.bucket(d)
      b.history = []
      b.compactedRv = this.rv
    }
  }

  sendBookmarks(): void {
    for (const w of this.watchers) if (w.allowBookmarks) this.sendBookmark(w)
  }

  /** Resolves once no garbage-collection work is pending. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000 && this.gcTimer; i++) {
      await new Promise<void>((r) => this.gcWaiters.push(r))
    }
  }

  get serviceAccountIssuer(): string {
    return this.tokens.issuer
  }

  issueServiceAccountToken(namespace: string, name: string, opts?: IssueOptions): IssuedToken {
    return this.tokens.issue(namespace, name, opts)
  }

  // --- storage ---------------------------------------------------------------------------------

  private sortedObjects(objects: Map<string, KubeObject>): KubeObject[] {
    return [...objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o)
  }

  /** Persist a change: bump the global RV, record history, notify watches, poke the GC. */
  private commit(b: Bucket, type: WatchEventType, obj: KubeObject, prev: KubeObject | undefined): KubeObject {
    const rv = ++this.rv
    const stored = clone(obj)
    meta(stored).resourceVersion = String(rv)
    const key = objKey(stored.metadata.namespace, stored.metadata.name)
    if (type === 'DELETED') b.objects.delete(key)
    else b.objects.set(key, stored)
    const ev: HistoryEvent = {type, rv, obj: stored, prev}
    b.history.push(ev)
    while (b.history.length > this.opts.historySize) {
      const dropped = b.history.shift()!
      b.compactedRv = dropped.rv
    }
    for (const w of this.watchers) if (w.bucket === b) this.dispatch(w, ev)
    this.scheduleGc()
    return stored
  }

  /** The state of a bucket at `rv`, rebuilt by rolling back history (etcd MVCC read). */
  private snapshot(b: Bucket, rv: number): Map<string, KubeObject> {
    const m = new Map(b.objects)
    for (let i = b.history.length - 1; i >= 0 && b.history[i]!.rv > rv; i--) {
      const ev = b.history[i]!
      const key = objKey(ev.obj.metadata.namespace, ev.obj.metadata.name)
      if (ev.type === 'ADDED') m.delete(key)
      else m.set(key, ev.prev!)
    }
    return m
  }

  // --- watch -----------------------------------------------------------------------------------

  private matches(w: Watcher, obj: KubeObject | undefined): boolean {
    if (!obj) return false
    if (w.namespace !== undefined && obj.metadata?.namespace !== w.namespace) return false
    const view = w.def.fromStorage ? w.def.fromStorage(clone(obj)) : obj
    if (!matchesLabels(w.labels, view.metadata?.labels)) return false
    return w.fields.every((f) => (fieldValue(w.def, view, f.field) === f.value) !== f.negate)
  }

  /** Watch-cache semantics: objects entering/leaving the selector become ADDED/DELETED. */
  private dispatch(w: Watcher, ev: HistoryEvent): void {
    if (w.closed || ev.rv <= w.afterRv) return
    const cur = ev.type !== 'DELETED' && this.matches(w, ev.obj)
    const prev = ev.type === 'ADDED' ? false : this.matches(w, ev.prev)
    let type: WatchEventType | undefined
    if (ev.type === 'DELETED') type = this.matches(w, ev.prev) ? 'DELETED' : undefined
    else if (cur && prev) type = 'MODIFIED'
    else if (cur) type = 'ADDED'
    else if (prev) type = 'DELETED'
    w.afterRv = ev.rv
    if (type) this.writeEvent(w, type, this.toView(w.def, ev.obj))
  }

  private writeEvent(w: Watcher, type: string, object: KubeObject): void {
    if (w.closed) return
    const o = object.kind === 'Status' ? object : (({kind, apiVersion, ...rest}) => ({kind, apiVersion, ...rest}))(object)
    w.res.write(`${JSON.stringify({type, object: o})}\n`)
  }

  private sendBookmark(w: Watcher, annotations?: Record<string, string>): void {
    const m: KubeObject = {resourceVersion: String(Math.max(w.afterRv, this.rv)), creationTimestamp: null}
    if (annotations) m.annotations = annotations
    this.writeEvent(w, 'BOOKMARK', {kind: w.def.kind, apiVersion: apiVersionOf(w.def), metadata: m})
  }

  private expiredStatus(requested: number, oldest: number): KubeObject {
    return statusBody(410, 'Expired', `too old resource version: ${requested} (${oldest})`)
  }

  private endWatch(w: Watcher, abrupt: boolean): void {
    if (w.closed) return
    w.closed = true
    for (const t of w.timers) clearTimeout(t)
    this.watchers.delete(w)
    if (abrupt) {
      w.res.socket?.destroy()
      w.res.destroy()
    } else w.res.end()
  }

  private startWatch(def: Def, ns: string | undefined, q: Record<string, string>, res: ServerResponse): void {
    const labels = parseLabelSelector(q.labelSelector)
    const fields = parseFieldSelector(q.fieldSelector, def, q.labelSelector)
    const b = this.bucket(def)
    const rvParam = q.resourceVersion
    const sendInitial = q.sendInitialEvents === 'true'
    if (sendInitial) {
      if (q.resourceVersionMatch !== 'NotOlderThan') {
        throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
          fe.forbidden('resourceVersionMatch', 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'),
        ])
      }
      if (q.allowWatchBookmarks !== 'true') {
        throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
          fe.forbidden('allowWatchBookmarks', 'allowWatchBookmarks must be set to true when sendInitialEvents is true'),
        ])
      }
    }
    let from: number | undefined
    if (rvParam !== undefined && rvParam !== '' && rvParam !== '0') {
      if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
      from = Number(rvParam)
    }
    res.writeHead(200, {'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID()})
    res.flushHeaders()
    const w: Watcher = {
      id: this.nextWatcherId++,
      def,
      bucket: b,
      namespace: def.namespaced ? ns : undefined,
      labels,
      fields,
      res,
      afterRv: 0,
      allowBookmarks: q.allowWatchBookmarks === 'true',
      timers: [],
      closed: false,
    }
    if (from !== undefined && !sendInitial) {
      if (from < b.compactedRv) {
        // What the watch cache does for a too-old RV: HTTP 200, one ERROR event, end of stream.
        res.end(`${JSON.stringify({type: 'ERROR', object: this.expiredStatus(from, b.compactedRv)})}\n`)
        return
      }
      w.afterRv = from
      for (const ev of b.history) if (ev.rv > from) this.dispatch(w, ev)
      w.afterRv = Math.max(from, this.rv)
    } else {
      for (const o of this.sortedObjects(b.objects)) if (this.matches(w, o)) this.writeEvent(w, 'ADDED', this.toView(def, o))
      w.afterRv = this.rv
      if (sendInitial) this.sendBookmark(w, {'k8s.io/initial-events-end': 'true'})
    }
    this.watchers.add(w)
    const onClose = () => {
      if (!w.closed) {
        w.closed = true
        for (const t of w.timers) clearTimeout(t)
        this.watchers.delete(w)
      }
    }
    res.on('close', onClose)
    if (q.timeoutSeconds !== undefined && /^\d+$/.test(q.timeoutSeconds) && Number(q.timeoutSeconds) > 0) {
      const t = setTimeout(
        () => {
          if (w.allowBookmarks) this.sendBookmark(w)
          this.endWatch(w, false)
        },
        Number(q.timeoutSeconds) * 1000,
      )
      t.unref()
      w.timers.push(t)
    }
    if (w.allowBookmarks && this.opts.bookmarkIntervalMs > 0) {
      const t = setInterval(() => this.sendBookmark(w), this.opts.bookmarkIntervalMs)
      t.unref()
      w.timers.push(t)
    }
  }

  // --- HTTP plumbing ---------------------------------------------------------------------------

  private send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(code, {
      'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      'Cache-Control': 'no-cache, private',
      'Audit-Id': randomUUID(),
      'Content-Length': String(Buffer.byteLength(text)),
      ...headers,
    })
    res.end(text)
  }

  private sendError(res: ServerResponse, err: StatusError): void {
    this.send(res, err.code, err.status, err.headers)
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const c of req) {
      const b = c as Buffer
      size += b.length
      if (size > 3 * 1024 * 1024)
        throw new StatusError(statusBody(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'))
      chunks.push(b)
    }
    return Buffer.concat(chunks)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const query: Record<string, string> = {}
    for (const [k, v] of url.searchParams) if (!(k in query)) query[k] = v
    const method = (req.method ?? 'GET').toUpperCase()
    const info = resolveRequest(method, url.pathname, query)
    const record: RequestRecord = {...info, status: 0, time: Date.now()}
    this.requests.push(record)
    res.on('finish', () => {
      record.status = res.statusCode
    })
    try {
      const body = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : await this.readBody(req)
      if (this.latencyMs > 0) await sleep(this.latencyMs)
      if (this.closed) {
        res.destroy()
        return
      }
      const health = ['/healthz', '/livez', '/readyz']
      if (health.includes(url.pathname)) {
        this.send(res, 200, 'ok')
        return
      }
      const discovery = this.tokens.serveDiscovery(method, url.pathname)
      if (discovery) {
        this.send(res, discovery.code, discovery.body, {'Content-Type': discovery.contentType})
        return
      }
      const user = this.tokens.authenticate(req.headers.authorization)
      if (!user && this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
        throw errors.unauthorized()
      }
      record.user = (user ?? ADMIN_USER).username
      this.tokens.authorize(user ?? ADMIN_USER, info)
      const fault = this.faults.find((f) => f.remaining > 0 && (f.opts.match ? f.opts.match(info) : info.isResourceRequest))
      if (fault) {
        fault.remaining--
        this.faults = this.faults.filter((f) => f.remaining > 0)
        throw faultError(fault.opts)
      }
      if (!info.isResourceRequest) {
        this.serveNonResource(res, method, url.pathname)
        return
      }
      await this.serveResource(req, res, info, body)
    } catch (err) {
      if (err instanceof StatusError) this.sendError(res, err)
      else this.sendError(res, errors.internal(err instanceof Error ? err.message : String(err)))
    }
    if (res.headersSent) record.status = res.statusCode // watches: the stream is open, status is known
  }

  // --- discovery -------------------------------------------------------------------------------

  private serveNonResource(res: ServerResponse, method: string, path: string): void {
    if (method !== 'GET') throw errors.genericNotFound()
    const segs = path.split('/').filter(Boolean)
    if (path === '/version' || path === '/version/') {
      const {major, minor} = this.opts.version
      this.send(res, 200, {
        major,
        minor,
        gitVersion: `v${major}.${minor}.0`,
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2024-08-13T07:28:49Z',
        goVersion: 'go1.22.5',
        compiler: 'gc',
        platform: 'linux/amd64',
      })
      return
    }
    if (segs.length === 1 && segs[0] === 'api') {
      this.send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress: `${this.host}:${this._port}`}],
      })
      return
    }
    if (segs.length === 2 && segs[0] === 'api') {
      this.sendResourceList(res, '', segs[1]!)
      return
    }
    if (segs.length === 1 && segs[0] === 'apis') {
      this.send(res, 200, {kind: 'APIGroupList', apiVersion: 'v1', groups: this.groups()})
      return
    }
    if (segs.length === 2 && segs[0] === 'apis') {
      const g = this.groups().find((x) => x.name === segs[1])
      if (!g) throw errors.genericNotFound()
      this.send(res, 200, {kind: 'APIGroup', apiVersion: 'v1', ...g})
      return
    }
    if (segs.length === 3 && segs[0] === 'apis') {
      this.sendResourceList(res, segs[1]!, segs[2]!)
      return
    }
    throw errors.genericNotFound()
  }

  private groups(): KubeObject[] {
    const byGroup = new Map<string, string[]>()
    for (const d of this.defs) {
      if (!d.group) continue
      const vs = byGroup.get(d.group) ?? []
      if (!vs.includes(d.version)) vs.push(d.version)
      byGroup.set(d.group, vs)
    }
    for (const g of this.tokens.groups()) if (!byGroup.has(g)) byGroup.set(g, ['v1'])
    return [...byGroup.entries()].map(([name, versions]) => ({
      name,
      versions: versions.map((v) => ({groupVersion: `${name}/${v}`, version: v})),
      preferredVersion: {groupVersion: `${name}/${versions[0]}`, version: versions[0]},
    }))
  }

  private sendResourceList(res: ServerResponse, group: string, version: string): void {
    const defs = this.defs.filter((d) => d.group === group && d.version === version)
    const extra = this.tokens.resources(group, version)
    if (!defs.length && !extra.length) throw errors.genericNotFound()
    const resources: KubeObject[] = []
    for (const d of defs) {
      const r: KubeObject = {
        name: d.resource,
        singularName: d.singular ?? d.kind.toLowerCase(),
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      }
      if (d.shortNames?.length) r.shortNames = d.shortNames
      if (d.categories?.length) r.categories = d.categories
      resources.push(r)
      if (d.statusSubresource) {
        resources.push({
          name: `${d.resource}/status`,
          singularName: '',
          namespaced: d.namespaced,
          kind: d.kind,
          verbs: ['get', 'patch', 'update'],
        })
      }
      if (d.group === '' && d.resource === 'namespaces') {
        resources.push({name: 'namespaces/finalize', singularName: '', namespaced: false, kind: 'Namespace', verbs: ['update']})
      }
    }
    resources.push(...extra)
    this.send(res, 200, {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources})
  }

  // --- resource requests ---------------------------------------------------------------------

  private async serveResource(req: IncomingMessage, res: ServerResponse, info: RequestInfo, body: Buffer): Promise<void> {
    const tokenResponse = this.tokens.serve(info, body)
    if (tokenResponse) {
      this.send(res, tokenResponse.code, tokenResponse.body, tokenResponse.headers)
      return
    }
    const def = this.findDef(info.apiGroup ?? '', info.apiVersion ?? '', info.resource ?? '')
    if (!def) throw errors.genericNotFound()
    const {verb, name, subresource, query: q} = info
    let ns = info.namespace
    if (def.namespaced) {
      if (name !== undefined && ns === undefined && verb !== 'watch') throw errors.genericNotFound()
    } else if (ns !== undefined) throw errors.genericNotFound()
    if (subresource !== undefined) {
      const ok =
        (subresource === 'status' && def.statusSubresource) ||
        (subresource === 'finalize' && def.group === '' && def.resource === 'namespaces')
      if (!ok) throw errors.genericNotFound()
      if (!['get', 'update', 'patch'].includes(verb)) throw errors.methodNotAllowed()
      if (subresource === 'finalize' && verb !== 'update') throw errors.methodNotAllowed()
    }
    if (!def.namespaced) ns = undefined
    if ((verb === 'update' || verb === 'patch') && name === undefined) throw errors.methodNotAllowed()
    const dryRun = this.parseDryRun(q.dryRun)
    switch (verb) {
      case 'list':
        this.send(res, 200, await this.list(def, ns, q))
        return
      case 'watch': {
        const wq = {...q}
        if (name) wq.fieldSelector = [`metadata.name=${name}`, q.fieldSelector].filter(Boolean).join(',')
        this.startWatch(def, ns, wq, res)
        return
      }
      case 'get': {
        await this.waitForRv(q.resourceVersion, undefined)
        const o = this.bucket(def).objects.get(objKey(ns, name!))
        if (!o) throw errors.notFound(def, name!)
        this.send(res, 200, this.toViewOrdered(def, o))
        return
      }
      case 'create': {
        if (name !== undefined) throw errors.methodNotAllowed()
        if (def.namespaced && ns === undefined) throw errors.methodNotAllowed()
        const {obj, warnings} = this.parseBody(req, body, def, q)
        const created = this.create(def, ns, obj, dryRun)
        this.send(res, 201, created, warnings)
        return
      }
      case 'update': {
        const {obj, warnings} = this.parseBody(req, body, def, q)
        const {object, created} = this.update(def, ns, name!, subresource, obj, dryRun, 'update')
        this.send(res, created ? 201 : 200, object, warnings)
        return
      }
      case 'patch': {
        const object = this.patch(req, def, ns, name!, subresource, body, dryRun)
        this.send(res, 200, object)
        return
      }
      case 'delete': {
        const opts = this.deleteOptions(body, q, dryRun)
        const out = this.delete(def, ns, name!, opts)
        this.send(res, 200, out)
        return
      }
      case 'deletecollection': {
        if (def.namespaced && ns === undefined) throw errors.methodNotAllowed()
        const opts = this.deleteOptions(body, q, dryRun)
        const list = await this.list(def, ns, {...q, limit: '', continue: ''})
        const items: KubeObject[] = []
        for (const it of list.items as KubeObject[]) {
          try {
            this.delete(def, ns, it.metadata.name, opts)
            items.push(it)
          } catch (e) {
            if (!(e instanceof StatusError && e.code === 404)) throw e
          }
        }
        this.send(res, 200, {...list, items})
        return
      }
      default:
        throw errors.methodNotAllowed()
    }
  }

  private parseDryRun(v: string | undefined): boolean {
    if (v === undefined || v === '') return false
    if (v === 'All') return true
    throw errors.badRequest(`Invalid dryRun parameter: ${goQuote(v)}: supported values: "All"`)
  }

  /** Wait like the watch cache does for a resourceVersion from the future, then 504. */
  private async waitForRv(rvParam: string | undefined, match: string | undefined): Promise<void> {
    if (rvParam === undefined || rvParam === '' || rvParam === '0' || match === 'Exact') return
    if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
    const want = Number(rvParam)
    const deadline = Date.now() + this.opts.tooLargeResourceVersionWaitMs
    while (this.rv < want) {
      if (Date.now() >= deadline) throw errors.tooLargeResourceVersion(want, this.rv)
      await sleep(10)
    }
  }

  private parseBody(
    req: IncomingMessage,
    body: Buffer,
    def: Def,
    q: Record<string, string>,
  ): {obj: KubeObject; warnings: Record<string, string>} {
    const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase()
    let parsed: unknown
    try {
      if (ct === 'application/json' || ct === '') parsed = JSON.parse(body.toString('utf8'))
      else if (ct === 'application/yaml') parsed = YAML.parse(body.toString('utf8'))
      else {
        throw errors.unsupportedMediaType(
          def.custom
            ? ['application/json', 'application/yaml']
            : ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'],
        )
      }
    } catch (e) {
      if (e instanceof StatusError) throw e
      throw errors.badRequest(`couldn't get version/kind; json parse error: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (!isObj(parsed))
      throw errors.badRequest(
        `couldn't get version/kind; json parse error: json: cannot unmarshal ${jsonTypeName(parsed)} into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }`,
      )
    return this.decodeTyped(def, parsed, q.fieldValidation, 'body')
  }

  /**
   * Typed decoding of a request object: type meta checks, unknown-field handling and the
   * definition's `decode` hook (Secret base64, MicroTime format, ...).
   */
  private decodeTyped(
    def: Def,
    input: KubeObject,
    fieldValidation: string | undefined,
    mode: 'body' | {patchValue: string; errorPrefix: string},
  ): {obj: KubeObject; warnings: Record<string, string>} {
    const patchError = (msg: string) =>
      mode === 'body'
        ? this.decodeError(def, msg)
        : errors.invalid('', '', '', [fe.invalid('patch', mode.patchValue, `${mode.errorPrefix}${msg}`)])
    const obj = clone(input)
    const expectedApiVersion = apiVersionOf(def)
    if (def.custom) {
      if (!obj.kind) throw errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(input)}'`)
      if (!obj.apiVersion) throw errors.badRequest(`Object 'apiVersion' is missing in '${JSON.stringify(input)}'`)
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== expectedApiVersion) {
      throw errors.badRequest(
        `the API version in the data (${obj.apiVersion}) does not match the expected API version (${expectedApiVersion})`,
      )
    }
    if (obj.kind !== undefined && obj.kind !== def.kind) {
      throw errors.badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${def.kind})`)
    }
    const warnings: string[] = []
    if (def.knownFields) {
      const unknown: string[] = []
      for (const k of Object.keys(obj)) if (!def.knownFields.includes(k)) unknown.push(k)
      if (isObj(obj.metadata)) for (const k of Object.keys(obj.metadata)) if (!KNOWN_META_FIELDS.has(k)) unknown.push(`metadata.${k}`)
      if (unknown.length) {
        if (fieldValidation === 'Strict') {
          throw errors.badRequest(`strict decoding error: ${unknown.map((u) => `unknown field ${goQuote(u)}`).join(', ')}`)
        }
        for (const u of unknown) {
          if (u.startsWith('metadata.')) delete obj.metadata[u.slice('metadata.'.length)]
          else delete obj[u]
          if (fieldValidation !== 'Ignore') warnings.push(`299 - ${goQuote(`unknown field ${goQuote(u)}`)}`)
        }
      }
    }
    if (obj.metadata !== undefined && obj.metadata !== null && !isObj(obj.metadata)) {
      const msg = `json: cannot unmarshal ${jsonTypeName(obj.metadata)} into Go struct field ${def.kind}.metadata of type v1.ObjectMeta`
      throw patchError(msg)
    }
    if (def.decode) {
      const msg = def.decode(obj)
      if (msg) {
        // create/update: a decoding error (400); patch: the patched object failed to decode (422).
        throw patchError(msg)
      }
    }
    if (!def.custom) {
      const pruned = pruneTyped(obj) as KubeObject
      for (const k of Object.keys(obj)) delete obj[k]
      Object.assign(obj, pruned)
      if (isObj(obj.metadata)) pruneMeta(obj.metadata)
    }
    obj.apiVersion = expectedApiVersion
    obj.kind = def.kind
    return {obj, warnings: warnings.length ? {Warning: warnings.join(', ')} : {}}
  }

  private decodeError(def: Def, msg: string): StatusError {
    return errors.badRequest(`${def.kind} in version ${goQuote(def.version)} cannot be handled as a ${def.kind}: ${msg}`)
  }

  private ensureNamespace(def: Def, ns: string | undefined, obj: KubeObject): void {
    const m = meta(obj)
    if (!def.namespaced) {
      delete m.namespace
      return
    }
    if (m.namespace === undefined || m.namespace === '') m.namespace = ns
    else if (m.namespace !== ns)
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request')
  }

  // --- list ------------------------------------------------------------------------------------

  private async list(def: Def, ns: string | undefined, q: Record<string, string>): Promise<KubeObject> {
    const labels = parseLabelSelector(q.labelSelector)
    const fields = parseFieldSelector(q.fieldSelector, def, q.labelSelector)
    const b = this.bucket(def)
    const rvParam = q.resourceVersion
    const match = q.resourceVersionMatch
    if (match && !rvParam) {
      throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
        fe.forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden unless resourceVersion is provided'),
      ])
    }
    if (match && match !== 'Exact' && match !== 'NotOlderThan') {
      throw errors.invalid('meta.k8s.io', 'ListOptions', '', [fe.notSupported('resourceVersionMatch', match, ['Exact', 'NotOlderThan'])])
    }
    if (match === 'Exact' && rvParam === '0') {
      throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
        fe.forbidden('resourceVersionMatch', 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
      ])
    }
    let listRv = this.rv
    let start = ''
    let objects: Map<string, KubeObject> = b.objects
    if (q.continue) {
      let token: {rv?: unknown; start?: unknown}
      try {
        token = JSON.parse(Buffer.from(q.continue, 'base64').toString('utf8')) as {rv?: unknown; start?: unknown}
      } catch {
        throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)')
      }
      if (typeof token.rv !== 'number' || typeof token.start !== 'string')
        throw errors.badRequest('continue key is not valid: invalid format')
      start = token.start
      if (token.rv !== -1) {
        if (token.rv < b.compactedRv) {
          const inconsistent = Buffer.from(JSON.stringify({v: 'meta.k8s.io/v1', rv: -1, start})).toString('base64')
          throw errors.expired(
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
            {continue: inconsistent},
          )
        }
        listRv = token.rv
        objects = this.snapshot(b, listRv)
      }
    } else if (rvParam && rvParam !== '0') {
      if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
      const want = Number(rvParam)
      if (match === 'Exact') {
        if (want > this.rv) throw errors.tooLargeResourceVersion(want, this.rv)
        if (want < b.compactedRv) throw errors.expired('The resourceVersion for the provided list is too old.')
        listRv = want
        objects = this.snapshot(b, want)
      } else {
        await this.waitForRv(rvParam, match)
        listRv = this.rv
        objects = b.objects
      }
    }
    const view = (o: KubeObject) => (def.fromStorage ? def.fromStorage(clone(o)) : o)
    const entries = [...objects.entries()]
      .sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))
      .filter(([key, o]) => {
        if (ns !== undefined && o.metadata.namespace !== ns) return false
        if (start && key.slice(0) < start) return false
        const v = view(o)
        return matchesLabels(labels, v.metadata?.labels) && fields.every((f) => (fieldValue(def, v, f.field) === f.value) !== f.negate)
      })
    const limit = q.limit && /^\d+$/.test(q.limit) ? Number(q.limit) : 0
    const page = limit > 0 ? entries.slice(0, limit) : entries
    const listMeta: KubeObject = {resourceVersion: String(listRv)}
    if (limit > 0 && entries.length > limit) {
      const lastKey = page[page.length - 1]![0]
      listMeta.continue = Buffer.from(JSON.stringify({v: 'meta.k8s.io/v1', rv: listRv, start: `${lastKey}\u0000`})).toString('base64')
      if (!q.labelSelector && !q.fieldSelector) listMeta.remainingItemCount = entries.length - limit
    }
    const items = page.map(([, o]) => {
      const v = this.toViewOrdered(def, o)
      if (!def.custom) {
        // Typed lists omit apiVersion/kind on their items; unstructured (CR) lists keep them.
        delete v.apiVersion
        delete v.kind
      }
      return v
    })
    return {kind: def.listKind ?? `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: listMeta, items}
  }

  // --- validation --------------------------------------------------------------------------------

  private validateMeta(def: Def, obj: KubeObject, old: KubeObject | undefined): FieldError[] {
    const errs: FieldError[] = []
    const m = obj.metadata as KubeObject
    if (!m.name) {
      if (!m.generateName) errs.push(fe.required('metadata.name', 'name or generateName is required'))
    } else {
      const msgs = def.nameValidation === 'label' ? isDNS1123Label(m.name) : isDNS1123Subdomain(m.name)
      for (const msg of msgs) errs.push(fe.invalid('metadata.name', m.name, msg))
    }
    if (def.namespaced) {
      if (!m.namespace) errs.push(fe.required('metadata.namespace'))
      else for (const msg of isDNS1123Label(m.namespace)) errs.push(fe.invalid('metadata.namespace', m.namespace, msg))
    } else if (m.namespace) errs.push(fe.forbidden('metadata.namespace', 'not allowed on this type'))
    if (m.generation !== undefined && m.generation < 0)
      errs.push(fe.invalid('metadata.generation', m.generation, 'must be greater than or equal to 0'))
    if (m.labels !== undefined) {
      if (!isObj(m.labels)) errs.push(fe.invalid('metadata.labels', m.labels, 'must be a map'))
      else {
        for (const [k, v] of Object.entries(m.labels)) {
          for (const msg of isQualifiedName(k)) errs.push(fe.invalid('metadata.labels', k, msg))
          for (const msg of isLabelValue(String(v))) errs.push(fe.invalid('metadata.labels', v, msg))
        }
      }
    }
    if (isObj(m.annotations)) {
      let total = 0
      for (const [k, v] of Object.entries(m.annotations)) {
        for (const msg of isQualifiedName(k.toLowerCase())) errs.push(fe.invalid('metadata.annotations', k, msg))
        total += k.length + String(v).length
      }
      if (total > 256 * 1024) errs.push(fe.tooLong('metadata.annotations', 256 * 1024))
    }
    if (Array.isArray(m.ownerReferences)) {
      const controllers: string[] = []
      for (const ref of m.ownerReferences as KubeObject[]) {
        const p = 'metadata.ownerReferences'
        if (!ref.apiVersion) errs.push(fe.invalid(`${p}.apiVersion`, ref.apiVersion ?? '', 'version must not be empty'))
        if (!ref.kind) errs.push(fe.invalid(`${p}.kind`, ref.kind ?? '', 'kind must not be empty'))
        if (!ref.name) errs.push(fe.invalid(`${p}.name`, ref.name ?? '', 'name must not be empty'))
        if (!ref.uid) errs.push(fe.invalid(`${p}.uid`, ref.uid ?? '', 'uid must not be empty'))
        if (ref.controller === true) controllers.push(`${ref.kind}/${ref.name}`)
      }
      if (controllers.length > 1) {
        errs.push(
          fe.invalid(
            'metadata.ownerReferences',
            m.ownerReferences,
            `Only one reference can have Controller set to true. Found "true" in references for ${controllers.join(' and ')}`,
          ),
        )
      }
    }
    if (Array.isArray(m.finalizers)) {
      for (const f of m.finalizers as string[])
        for (const msg of isQualifiedName(String(f))) errs.push(fe.invalid('metadata.finalizers', f, msg))
    }
    if (old) {
      const om = old.metadata as KubeObject
      if (m.uid !== om.uid) errs.push(fe.invalid('metadata.uid', m.uid, 'field is immutable'))
      if (om.deletionTimestamp && Array.isArray(m.finalizers)) {
        const added = (m.finalizers as string[]).filter((f) => !((om.finalizers as string[] | undefined) ?? []).includes(f))
        if (added.length) {
          errs.push(
            fe.forbidden(
              'metadata.finalizers',
              `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map(goQuote).join(', ')}}`,
            ),
          )
        }
      }
    }
    return errs
  }

  private runValidation(def: Def, obj: KubeObject, old: KubeObject | undefined): void {
    const errs = [...this.validateMeta(def, obj, old), ...(def.validate?.(obj, old, def) ?? [])]
    if (errs.length) {
      const view = this.toView(def, obj)
      throw errors.invalid(def.group, def.kind, String(view.metadata?.name ?? ''), errs)
    }
  }

  private specChanged(def: Def, a: KubeObject, b: KubeObject): boolean {
    const strip = (o: KubeObject) => {
      const {metadata: _m, status, ...rest} = o
      return def.custom && !def.statusSubresource ? {...rest, status} : rest
    }
    return !deepEqual(strip(a), strip(b))
  }

  // --- create ----------------------------------------------------------------------------------

  private create(def: Def, ns: string | undefined, input: KubeObject, dryRun: boolean): KubeObject {
    this.ensureNamespace(def, ns, input)
    let obj = this.toStorage(def, input)
    const m = meta(obj)
    const requestedRv = m.resourceVersion
    // BeforeCreate: system fields are owned by the server.
    m.uid = randomUUID()
    m.creationTimestamp = nowTime()
    delete m.deletionTimestamp
    delete m.deletionGracePeriodSeconds
    delete m.selfLink
    delete m.managedFields
    if (def.generation) m.generation = 1
    else delete m.generation
    if (def.statusSubresource && def.custom) delete obj.status // create cannot set status
    def.prepareForCreate?.(obj)
    const b = this.bucket(def)
    let generated = false
    if (!m.name && m.generateName) {
      generated = true
      m.name = this.generateName(b, m.namespace, String(m.generateName))
    }
    this.runValidation(def, obj, undefined)
    this.admitCreate(def, obj)
    if (requestedRv) throw errors.unknown('resourceVersion should not be set on objects to be created')
    const key = objKey(m.namespace, m.name)
    if (b.objects.has(key)) {
      if (!generated) throw errors.alreadyExists(def, m.name)
      m.name = this.generateName(b, m.namespace, String(m.generateName))
    }
    if (dryRun) {
      obj = clone(obj)
      delete obj.metadata.resourceVersion
      return this.toViewOrdered(def, obj)
    }
    const stored = this.commit(b, 'ADDED', obj, undefined)
    return this.toViewOrdered(def, stored)
  }

  private generateName(b: Bucket, ns: string | undefined, base: string): string {
    const prefix = base.length > 58 ? base.slice(0, 58) : base
    for (;;) {
      let s = ''
      for (let i = 0; i < 5; i++) s += GENERATE_NAME_ALPHABET[randomInt(GENERATE_NAME_ALPHABET.length)]
      if (!b.objects.has(objKey(ns, prefix + s))) return prefix + s
    }
  }

  /** NamespaceLifecycle admission. */
  private admitCreate(def: Def, obj: KubeObject): void {
    if (!def.namespaced) return
    const ns = obj.metadata.namespace as string
    const nsDef = this.findDef('', 'v1', 'namespaces')!
    const nsObj = this.bucket(nsDef).objects.get(objKey(undefined, ns))
    if (!nsObj) {
      if (this.opts.requireNamespaces) throw errors.notFound(nsDef, ns)
      return
    }
    if (nsObj.metadata.deletionTimestamp || nsObj.status?.phase === 'Terminating') {
      throw errors.forbidden(def, obj.metadata.name, `unable to create new content in namespace ${ns} because it is being terminated`, [
        {reason: 'NamespaceTerminating', message: `namespace ${ns} is being terminated`, field: 'metadata.namespace'},
      ])
    }
  }

  // --- update ----------------------------------------------------------------------------------

  private update(
    def: Def,
    ns: string | undefined,
    name: string,
    subresource: string | undefined,
    input: KubeObject,
    dryRun: boolean,
    verb: 'update' | 'patch',
  ): {object: KubeObject; created: boolean} {
    const bodyName = input.metadata?.name ?? ''
    if (bodyName !== name) throw errors.badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`)
    this.ensureNamespace(def, ns, input)
    const b = this.bucket(def)
    const key = objKey(ns, name)
    const existing = b.objects.get(key)
    if (!existing) {
      if (subresource || !def.allowCreateOnUpdate || verb === 'patch') throw errors.notFound(def, name)
      const obj = clone(input)
      delete meta(obj).resourceVersion
      return {object: this.create(def, ns, obj, dryRun), created: true}
    }
    let obj = this.toStorage(def, clone(input))
    const m = meta(obj)
    const om = existing.metadata as KubeObject
    // Optimistic concurrency.
    const newRv = m.resourceVersion
    if (newRv === undefined || newRv === '' || newRv === null) {
      if (!def.allowUnconditionalUpdate) {
        throw errors.invalid(def.group, def.resource, name, [
          fe.invalid('metadata.resourceVersion', {goSyntax: '0x0'}, 'must be specified for an update'),
        ])
      }
    } else {
      if (!/^\d+$/.test(String(newRv))) {
        throw errors.badRequest(`metadata.resourceVersion: Invalid value: ${goQuote(String(newRv))}: must be a decimal integer`)
      }
      if (String(newRv) !== om.resourceVersion)
        throw errors.conflict(def, name, 'the object has been modified; please apply your changes to the latest version and try again')
    }
    // BeforeUpdate: system fields come from the stored object.
    m.resourceVersion = om.resourceVersion
    if (!m.uid) m.uid = om.uid
    m.creationTimestamp = om.creationTimestamp
    if (om.deletionTimestamp) m.deletionTimestamp = om.deletionTimestamp
    else delete m.deletionTimestamp
    if (om.deletionGracePeriodSeconds !== undefined) m.deletionGracePeriodSeconds = om.deletionGracePeriodSeconds
    else delete m.deletionGracePeriodSeconds
    delete m.selfLink
    if (om.generation !== undefined) m.generation = om.generation
    else delete m.generation
    if (subresource === 'status') {
      // Status strategy: everything but .status comes from the stored object.
      const status = obj.status
      obj = clone(existing)
      if (status !== undefined) obj.status = status
      else delete obj.status
    } else if (subresource === 'finalize') {
      const fin = obj.spec?.finalizers
      obj = clone(existing)
      obj.spec = {...(obj.spec ?? {})}
      if (fin) obj.spec.finalizers = fin
      else delete obj.spec.finalizers
    } else {
      if (def.statusSubresource) {
        if (existing.status !== undefined) obj.status = clone(existing.status)
        else delete obj.status
      }
      def.prepareForUpdate?.(obj, existing)
      if (def.generation && this.specChanged(def, obj, existing)) m.generation = (om.generation ?? 0) + 1
    }
    this.runValidation(def, obj, existing)
    // An object being deleted whose last finalizer was removed goes away now.
    const fin = (obj.metadata.finalizers as string[] | undefined) ?? []
    const nsFin = def.group === '' && def.resource === 'namespaces' ? ((obj.spec?.finalizers as string[] | undefined) ?? []) : []
    if (obj.metadata.deletionTimestamp && fin.length === 0 && nsFin.length === 0) {
      if (dryRun) return {object: this.toViewOrdered(def, existing), created: false}
      this.commit(b, 'DELETED', clone(existing), existing)
      return {object: this.toViewOrdered(def, existing), created: false}
    }
    if (deepEqual(obj, existing)) return {object: this.toViewOrdered(def, existing), created: false} // no-op: no write, no RV bump, no event
    if (dryRun) return {object: this.toViewOrdered(def, obj), created: false}
    const stored = this.commit(b, 'MODIFIED', obj, existing)
    return {object: this.toViewOrdered(def, stored), created: false}
  }

  // --- patch -----------------------------------------------------------------------------------

  private patch(
    req: IncomingMessage,
    def: Def,
    ns: string | undefined,
    name: string,
    subresource: string | undefined,
    body: Buffer,
    dryRun: boolean,
  ): KubeObject {
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const accepted = def.custom
      ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]
      : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply]
    if (ct === PATCH_TYPES.apply) {
      // Server-side apply is NOT implemented by this test server (field ownership, managedFields,
      // conflicts...). Fail loudly with 415 rather than pretend.
      throw errors.unsupportedMediaType(accepted, ' (server-side apply is not supported by the kseal test API server)')
    }
    if (!accepted.includes(ct)) throw errors.unsupportedMediaType(accepted)
    let patchDoc: unknown
    try {
      patchDoc = JSON.parse(body.toString('utf8'))
    } catch (e) {
      throw errors.badRequest(e instanceof Error ? e.message : String(e))
    }
    const existing = this.bucket(def).objects.get(objKey(ns, name))
    if (!existing) throw errors.notFound(def, name)
    const current = this.toViewOrdered(def, existing)
    let patched: unknown
    if (ct === PATCH_TYPES.json) {
      try {
        patched = applyJsonPatch(current, patchDoc)
      } catch (e) {
        if (e instanceof JsonPatchApplyError) throw errors.genericInvalid()
        throw e
      }
    } else {
      if (!isObj(patchDoc)) throw errors.badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}')
      patched = ct === PATCH_TYPES.merge ? jsonMergePatch(current, patchDoc) : strategicMergePatch(current, patchDoc)
    }
    if (!isObj(patched)) throw errors.badRequest('the patched document is not a JSON object')
    if (patched.metadata?.name !== undefined && patched.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${patched.metadata.name}) does not match the name on the URL (${name})`)
    }
    // The apiserver reports decode failures of the patched object as 422 `patch: Invalid value`:
    // JSON/merge patches quote the patched object, strategic merge patches the patch as a Go map.
    const mode =
      ct === PATCH_TYPES.strategic
        ? {patchValue: goMapFormat(patchDoc), errorPrefix: 'error decoding from json: '}
        : {patchValue: JSON.stringify(patched), errorPrefix: ''}
    const {obj} = this.decodeTyped(def, patched, undefined, mode)
    // A patch that drops metadata.resourceVersion is unconditional; one that sets it is a precondition.
    return this.update(def, ns, name, subresource, obj, dryRun, 'patch').object
  }

  // --- delete ----------------------------------------------------------------------------------

  private deleteOptions(body: Buffer, q: Record<string, string>, dryRun: boolean): DeleteOptions {
    let o: KubeObject = {}
    if (body.length) {
      try {
        const parsed: unknown = JSON.parse(body.toString('utf8'))
        if (isObj(parsed)) o = parsed
      } catch {
        throw errors.badRequest("couldn't get version/kind; json parse error")
      }
    }
    let policy: string | undefined = q.propagationPolicy ?? o.propagationPolicy
    const orphan = q.orphanDependents ?? o.orphanDependents
    if (policy === undefined && orphan !== undefined) policy = String(orphan) === 'true' ? 'Orphan' : 'Background'
    if (policy !== undefined && !['Foreground', 'Background', 'Orphan'].includes(policy)) {
      throw errors.invalid('meta.k8s.io', 'DeleteOptions', '', [
        fe.notSupported('propagationPolicy', policy, ['Foreground', 'Background', 'Orphan']),
      ])
    }
    const bodyDry = Array.isArray(o.dryRun) && o.dryRun.includes('All')
    return {propagationPolicy: policy, preconditions: isObj(o.preconditions) ? o.preconditions : undefined, dryRun: dryRun || bodyDry}
  }

  private delete(def: Def, ns: string | undefined, name: string, opts: DeleteOptions): KubeObject {
    const b = this.bucket(def)
    const existing = b.objects.get(objKey(ns, name))
    if (!existing) throw errors.notFound(def, name)
    const om = existing.metadata as KubeObject
    const pre = opts.preconditions
    if (pre?.uid && pre.uid !== om.uid) {
      throw errors.conflict(def, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${om.uid}`)
    }
    if (pre?.resourceVersion && pre.resourceVersion !== om.resourceVersion) {
      throw errors.conflict(
        def,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${om.resourceVersion}`,
      )
    }
    if (om.deletionTimestamp) return this.toViewOrdered(def, existing) // deletion already in progress
    const finalizers = [...((om.finalizers as string[] | undefined) ?? [])]
    if (opts.propagationPolicy === 'Foreground' && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion')
    if (opts.propagationPolicy === 'Orphan' && !finalizers.includes('orphan')) finalizers.push('orphan')
    const isNamespace = def.group === '' && def.resource === 'namespaces'
    const nsFinalizers = isNamespace ? ((existing.spec?.finalizers as string[] | undefined) ?? []) : []
    if (finalizers.length || nsFinalizers.length) {
      // Graceful path: mark for deletion, finalizers (or the GC / namespace controller) finish it.
      const obj = clone(existing)
      obj.metadata.deletionTimestamp = nowTime()
      obj.metadata.deletionGracePeriodSeconds = 0
      if (finalizers.length) obj.metadata.finalizers = finalizers
      if (isNamespace) obj.status = {...(obj.status ?? {}), phase: 'Terminating'}
      if (opts.dryRun) return this.toViewOrdered(def, obj)
      return this.toViewOrdered(def, this.commit(b, 'MODIFIED', obj, existing))
    }
    if (!opts.dryRun) this.commit(b, 'DELETED', clone(existing), existing)
    if (def.returnDeletedObject) return this.toViewOrdered(def, existing)
    const details: KubeObject = {name, ...(def.group ? {group: def.group} : {}), kind: def.resource, uid: om.uid}
    return {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details}
  }

  // --- garbage collector & namespace controller ---------------------------------------------------

  private scheduleGc(): void {
    if (!this.opts.gc || this.closed || this.gcTimer) return
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined
      try {
        this.gcPass()
      } finally {
        if (!this.gcTimer) for (const r of this.gcWaiters.splice(0)) r()
      }
    }, this.opts.gcDelayMs)
  }

  private allObjects(): Array<{def: Def; obj: KubeObject}> {
    const out: Array<{def: Def; obj: KubeObject}> = []
    const seen = new Set<string>()
    for (const d of this.defs) {
      if (seen.has(d.storageKey)) continue
      seen.add(d.storageKey)
      for (const o of this.bucket(d).objects.values()) out.push({def: d, obj: o})
    }
    return out
  }

  private dependentsOf(uid: string): Array<{def: Def; obj: KubeObject}> {
    return this.allObjects().filter(({obj}) =>
      ((obj.metadata.ownerReferences as KubeObject[] | undefined) ?? []).some((r) => r.uid === uid),
    )
  }

  /** Remove a finalizer through the regular update path (deletes the object if it was the last one). */
  private removeFinalizer(def: Def, obj: KubeObject, finalizer: string, specFinalizer = false): void {
    const cur = this.bucket(def).objects.get(objKey(obj.metadata.namespace, obj.metadata.name))
    if (!cur) return
    const next = this.toViewOrdered(def, cur)
    if (specFinalizer) {
      next.spec = {...(next.spec ?? {}), finalizers: ((next.spec?.finalizers as string[] | undefined) ?? []).filter((f) => f !== finalizer)}
      this.update(def, next.metadata.namespace, next.metadata.name, 'finalize', next, false, 'update')
    } else {
      next.metadata.finalizers = ((next.metadata.finalizers as string[] | undefined) ?? []).filter((f) => f !== finalizer)
      this.update(def, next.metadata.namespace, next.metadata.name, undefined, next, false, 'update')
    }
  }

  private gcDelete(def: Def, obj: KubeObject, policy = 'Background'): void {
    try {
      this.delete(def, obj.metadata.namespace, obj.metadata.name, {propagationPolicy: policy, preconditions: {uid: obj.metadata.uid}})
    } catch (e) {
      if (!(e instanceof StatusError && (e.code === 404 || e.code === 409))) throw e
    }
  }

  private gcPass(): void {
    if (this.closed) return
    for (const {def, obj} of this.allObjects()) {
      try {
        this.gcObject(def, obj)
      } catch (e) {
        // Like the real GC: a failed attempt is not fatal; the next write triggers another pass.
        if (!(e instanceof StatusError)) throw e
      }
    }
  }

  private gcObject(def: Def, obj: KubeObject): void {
    const m = obj.metadata as KubeObject
    const live = this.bucket(def).objects.get(objKey(m.namespace, m.name))
    if (live !== obj) return // changed during this pass
    const fins = (m.finalizers as string[] | undefined) ?? []
    if (m.deletionTimestamp && fins.includes('orphan')) {
      for (const dep of this.dependentsOf(m.uid)) {
        const v = this.toViewOrdered(dep.def, dep.obj)
        v.metadata.ownerReferences = (v.metadata.ownerReferences as KubeObject[]).filter((r) => r.uid !== m.uid)
        if (!v.metadata.ownerReferences.length) delete v.metadata.ownerReferences
        this.update(dep.def, v.metadata.namespace, v.metadata.name, undefined, v, false, 'update')
      }
      this.removeFinalizer(def, obj, 'orphan')
      return
    }
    if (m.deletionTimestamp && fins.includes('foregroundDeletion')) {
      const deps = this.dependentsOf(m.uid)
      for (const dep of deps) if (!dep.obj.metadata.deletionTimestamp) this.gcDelete(dep.def, dep.obj, 'Foreground')
      const blocking = deps.filter(
        (d) =>
          this.bucket(d.def).objects.has(objKey(d.obj.metadata.namespace, d.obj.metadata.name)) &&
          ((d.obj.metadata.ownerReferences as KubeObject[]) ?? []).some((r) => r.uid === m.uid && r.blockOwnerDeletion === true),
      )
      if (!blocking.length) this.removeFinalizer(def, obj, 'foregroundDeletion')
      return
    }
    if (def.group === '' && def.resource === 'namespaces' && m.deletionTimestamp) {
      let remaining = 0
      for (const other of this.allObjects()) {
        if (!other.def.namespaced || other.obj.metadata.namespace !== m.name) continue
        remaining++
        if (!other.obj.metadata.deletionTimestamp) this.gcDelete(other.def, other.obj)
      }
      if (remaining === 0 && ((obj.spec?.finalizers as string[] | undefined) ?? []).includes('kubernetes')) {
        this.removeFinalizer(def, obj, 'kubernetes', true)
      }
      return
    }
    const refs = (m.ownerReferences as KubeObject[] | undefined) ?? []
    if (!refs.length) return
    const absent: KubeObject[] = []
    let resolvable = 0
    for (const ref of refs) {
      const ownerDef = this.defForOwner(String(ref.apiVersion ?? ''), String(ref.kind ?? ''))
      if (!ownerDef) continue // the real GC cannot resolve it either: leave the dependent alone
      resolvable++
      const owner = this.bucket(ownerDef).objects.get(objKey(ownerDef.namespaced ? m.namespace : undefined, String(ref.name)))
      if (!owner || owner.metadata.uid !== ref.uid) absent.push(ref)
    }
    if (!absent.length) return
    if (absent.length === refs.length && resolvable === refs.length) {
      if (!m.deletionTimestamp) this.gcDelete(def, obj)
    } else if (absent.length < refs.length) {
      const v = this.toViewOrdered(def, obj)
      v.metadata.ownerReferences = refs.filter((r) => !absent.includes(r))
      this.update(def, m.namespace, m.name, undefined, v, false, 'update')
    }
  }
}

/** Start a server on 127.0.0.1 (random port by default). Always `await handle.close()`. */
export async function startK8sApiServer(opts: K8sApiServerOptions = {}): Promise<K8sApiServer> {
  const s = new Server(opts)
  await s.listen(opts.port ?? 0)
  return s
}

/*
 * SIMPLIFICATIONS (things a real kube-apiserver does that this one does not):
 * - JSON only on the wire (plus YAML request bodies); no protobuf, CBOR, Table output or aggregated discovery.
 * - Server-side apply (application/apply-patch+yaml) answers 415; no metadata.managedFields are kept.
 * - Strategic merge patch only knows the merge keys of metadata.finalizers / metadata.ownerReferences.
 * - CRDs have no OpenAPI schema: no pruning, defaulting or schema validation; objects are stored as sent.
 * - No RBAC objects: an optional authorizer function (options.tokens) decides; no admission webhooks, quota,
 *   Event TTL, graceful deletion periods or pod-specific behaviour. ServiceAccount tokens: see k8s-tokens.ts.
 * - The watch history is a fixed-size ring per resource (the real cache is sized/aged dynamically).
 * - Typed "omitempty" is approximated by dropping nulls and empty metadata collections for built-ins.
 */
