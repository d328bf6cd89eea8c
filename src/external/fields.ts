/**
 * Reading untrusted Kubernetes objects field by field: every field is checked for its type, size
 * and syntax; unknown fields are refused (so a field kseal does not implement is never silently
 * ignored); every list and map is bounded. Errors name the object and the field path:
 * `ExternalSecret apps/db: spec.data[2].remoteRef.key: must be a non-empty string`.
 */
import {KsealError} from '../core/errors.js'
import {isObj, type Obj} from '../core/guards.js'

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/

export const isDnsLabel = (s: string) => s.length <= 63 && DNS_LABEL.test(s)
export const isDnsSubdomain = (s: string) => s.length <= 253 && DNS_SUBDOMAIN.test(s)
/** A key of a Secret's data, as the API server validates it. */
export const isSecretKey = (s: string) => s.length <= 253 && SECRET_KEY.test(s) && s !== '.' && s !== '..'

/** A label or annotation key: an optional DNS subdomain prefix and a qualified name of at most 63. */
export function isQualifiedName(s: string): boolean {
  const slash = s.lastIndexOf('/')
  const name = slash < 0 ? s : s.slice(slash + 1)
  if (slash >= 0 && !isDnsSubdomain(s.slice(0, slash))) return false
  return name.length <= 63 && QUALIFIED_NAME.test(name)
}

export const isLabelValue = (s: string) => s.length <= 63 && LABEL_VALUE.test(s)

/** One object being read: its identity for messages, and a way to fail at a field. */
export class Reader {
  constructor(readonly what: string) {}

  fail(path: string, message: string): never {
    throw new KsealError('ERR_INPUT', `${this.what}: ${path ? `${path}: ` : ''}${message}`)
  }

  /** An object's fields, refusing unknown ones (`unsupported` names fields kseal knows but refuses, with why). */
  object(v: unknown, path: string, known: readonly string[], unsupported: Record<string, string> = {}): Obj {
    if (!isObj(v)) this.fail(path, 'must be an object')
    const o = v as Obj
    for (const k of Object.keys(o)) {
      if (Object.hasOwn(unsupported, k)) this.fail(join(path, k), unsupported[k])
      if (!known.includes(k)) this.fail(join(path, k), `unknown field (kseal does not implement it; see docs/external-secrets.md)`)
    }
    return o
  }

  optObject(o: Obj, key: string, path: string, known: readonly string[], unsupported?: Record<string, string>): Obj | undefined {
    const v = o[key]
    return v === undefined || v === null ? undefined : this.object(v, join(path, key), known, unsupported)
  }

  string(o: Obj, key: string, path: string, opts: {max?: number; check?: (s: string) => boolean; expect?: string} = {}): string {
    const v = this.optString(o, key, path, opts)
    if (v === undefined || v === '') this.fail(join(path, key), 'is required')
    return v as string
  }

  optString(
    o: Obj,
    key: string,
    path: string,
    opts: {max?: number; check?: (s: string) => boolean; expect?: string} = {},
  ): string | undefined {
    const v = o[key]
    if (v === undefined || v === null) return undefined
    const p = join(path, key)
    if (typeof v !== 'string') this.fail(p, `must be a string, not ${kindOf(v)}`)
    const s = v as string
    const max = opts.max ?? 253
    if (s.length > max) this.fail(p, `longer than ${max} characters`)
    if (opts.check && !opts.check(s)) this.fail(p, `${JSON.stringify(s.slice(0, 80))} is not ${opts.expect ?? 'valid'}`)
    return s
  }

  /** One of `values`; `dflt` when unset, or (dflt null) a required field. `refused` names values kseal knows but refuses, with why. */
  oneOf<T extends string>(
    o: Obj,
    key: string,
    path: string,
    values: readonly T[],
    dflt: T | null,
    refused: Record<string, string> = {},
  ): T {
    const v = this.optString(o, key, path)
    if (v === undefined || v === '') return dflt ?? this.fail(join(path, key), `is required (${values.join(', ')})`)
    if (Object.hasOwn(refused, v)) this.fail(join(path, key), refused[v])
    if (!values.includes(v as T)) this.fail(join(path, key), `must be one of ${values.join(', ')}, not ${JSON.stringify(v.slice(0, 40))}`)
    return v as T
  }

  bool(o: Obj, key: string, path: string): boolean {
    const v = o[key]
    if (v === undefined || v === null) return false
    if (typeof v !== 'boolean') this.fail(join(path, key), `must be true or false, not ${kindOf(v)}`)
    return v as boolean
  }

  list(o: Obj, key: string, path: string, max: number): unknown[] {
    const v = o[key]
    if (v === undefined || v === null) return []
    if (!Array.isArray(v)) this.fail(join(path, key), `must be a list, not ${kindOf(v)}`)
    if ((v as unknown[]).length > max) this.fail(join(path, key), `has more than ${max} entries`)
    return v as unknown[]
  }

  stringList(
    o: Obj,
    key: string,
    path: string,
    max: number,
    opts: {maxLength?: number; check?: (s: string) => boolean; expect?: string} = {},
  ): string[] {
    return this.list(o, key, path, max).map((v, i) => {
      const p = `${join(path, key)}[${i}]`
      if (typeof v !== 'string') this.fail(p, `must be a string, not ${kindOf(v)}`)
      const s = v as string
      if (s.length > (opts.maxLength ?? 253)) this.fail(p, `longer than ${opts.maxLength ?? 253} characters`)
      if (opts.check && !opts.check(s)) this.fail(p, `${JSON.stringify(s.slice(0, 80))} is not ${opts.expect ?? 'valid'}`)
      return s
    })
  }

  /** A map of strings to strings, bounded in entries and total size. */
  stringMap(
    o: Obj,
    key: string,
    path: string,
    opts: {max: number; maxBytes: number; key?: (k: string) => string | undefined; value?: (v: string) => string | undefined},
  ): Record<string, string> {
    const v = o[key]
    if (v === undefined || v === null) return {}
    const p = join(path, key)
    if (!isObj(v)) this.fail(p, `must be a map of strings, not ${kindOf(v)}`)
    const entries = Object.entries(v as Obj)
    if (entries.length > opts.max) this.fail(p, `has more than ${opts.max} entries`)
    let bytes = 0
    const out: Record<string, string> = {}
    for (const [k, x] of entries) {
      const kp = `${p}[${JSON.stringify(k.slice(0, 80))}]`
      if (typeof x !== 'string') this.fail(kp, `must be a string, not ${kindOf(x)}`)
      const keyProblem = opts.key?.(k)
      if (keyProblem) this.fail(kp, keyProblem)
      const valueProblem = opts.value?.(x as string)
      if (valueProblem) this.fail(kp, valueProblem)
      bytes += Buffer.byteLength(k) + Buffer.byteLength(x as string)
      if (bytes > opts.maxBytes) this.fail(p, `is larger than ${opts.maxBytes} bytes`)
      out[k] = x as string
    }
    return out
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key
}

function kindOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'an object'
  return `a ${typeof v}`
}
