/**
 * Typed decoding of request bodies as the apiserver does it: type meta, unknown fields (Warning or
 * Strict), metav1.Time/MicroTime, typed omitempty, and each definition's `decode` hook.
 */
import YAML from 'yaml'
import type {IncomingMessage} from 'node:http'
import type {Server} from './server.js'
import {StatusError, errors, fe, goQuote} from './status.js'
import type {Def, KubeObject} from './types.js'
import {apiVersionOf, clone, isObj} from './util.js'

// Times ---------------------------------------------------------------------------------------

export const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
export const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/

/** metav1.Time: RFC3339 (fractions accepted on input, dropped on output), always re-encoded in UTC. */
export function normalizeTime(v: unknown): {value?: string | null; error?: string} {
  if (v === null || v === undefined) return {value: v as null | undefined}
  if (typeof v !== 'string') return {error: `json: cannot unmarshal ${jsonTypeName(v)} into Go value of type string`}
  if (!RFC3339.test(v)) return {error: `parsing time ${goQuote(v)} as "2006-01-02T15:04:05Z07:00": cannot parse ${goQuote(v)} as "2006"`}
  return {value: new Date(v).toISOString().replace(/\.\d+Z$/, 'Z')}
}

/** metav1.MicroTime: exactly RFC3339 with 6 fractional digits (a JS Date's 3 digits are rejected!). */
export function normalizeMicroTime(v: unknown): {value?: string | null; error?: string} {
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

export function jsonTypeName(v: unknown): string {
  if (Array.isArray(v)) return 'array'
  if (v === null) return 'null'
  return typeof v === 'object' ? 'object' : typeof v
}

export function getPath(o: KubeObject, path: string[]): unknown {
  let cur: unknown = o
  for (const p of path) {
    if (!isObj(cur)) return undefined
    cur = cur[p]
  }
  return cur
}

export function setPath(o: KubeObject, path: string[], v: unknown): void {
  let cur: KubeObject = o
  for (const p of path.slice(0, -1)) {
    if (!isObj(cur[p])) return
    cur = cur[p] as KubeObject
  }
  const last = path[path.length - 1]!
  if (v === undefined || v === null) delete cur[last]
  else cur[last] = v
}

export function decodeTimes(obj: KubeObject, times: string[][], microTimes: string[][]): string | undefined {
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
export function put(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, {value: v, enumerable: true, writable: true, configurable: true})
}

/** Typed objects omit nulls and empty optional collections; approximate that for built-ins. */
export function pruneTyped(o: unknown): unknown {
  if (Array.isArray(o)) return o.map(pruneTyped)
  if (!isObj(o)) return o
  const out: KubeObject = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === null || v === undefined) continue
    put(out, k, pruneTyped(v))
  }
  return out
}

export function pruneMeta(m: KubeObject): void {
  for (const k of ['labels', 'annotations']) if (isObj(m[k]) && Object.keys(m[k]).length === 0) delete m[k]
  for (const k of ['finalizers', 'ownerReferences', 'managedFields']) if (Array.isArray(m[k]) && m[k].length === 0) delete m[k]
  for (const k of Object.keys(m)) if (m[k] === null || m[k] === '') delete m[k]
}

export const KNOWN_META_FIELDS = new Set([
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

export function parseBody(
  s: Server,
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
      `couldn't get version/kind; json parse error: json: cannot unmarshal ${jsonTypeName(parsed)} into Go value of type ` +
        'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }',
    )
  return decodeTyped(s, def, parsed, q.fieldValidation, 'body')
}

/**
 * Typed decoding of a request object: type meta checks, unknown-field handling and the
 * definition's `decode` hook (Secret base64, MicroTime format, ...).
 */
export function decodeTyped(
  s: Server,
  def: Def,
  input: KubeObject,
  fieldValidation: string | undefined,
  mode: 'body' | {patchValue: string; errorPrefix: string},
): {obj: KubeObject; warnings: Record<string, string>} {
  const patchError = (msg: string) =>
    mode === 'body'
      ? decodeError(def, msg)
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

export function decodeError(def: Def, msg: string): StatusError {
  return errors.badRequest(`${def.kind} in version ${goQuote(def.version)} cannot be handled as a ${def.kind}: ${msg}`)
}
