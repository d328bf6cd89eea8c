/**
 * A structural schema (the subset of OpenAPI v3 a CustomResourceDefinition uses) applied to a value:
 * types, required fields, enums, patterns, minimum list lengths, and the pruning of fields the schema
 * does not list — what the API server does with a SealedSecret (crd.ts), and what kseal checks a
 * SealedSecret's shape with before it trusts any field.
 */
import {isObj, type Obj} from '../core/guards.js'

export interface StructuralSchema {
  type: 'object' | 'array' | 'string' | 'integer' | 'boolean'
  description?: string
  required?: string[]
  properties?: Record<string, StructuralSchema>
  additionalProperties?: StructuralSchema
  items?: StructuralSchema
  enum?: string[]
  pattern?: string
  minItems?: number
  format?: string
  'x-kubernetes-preserve-unknown-fields'?: boolean
  'x-kubernetes-list-type'?: string
  'x-kubernetes-list-map-keys'?: string[]
}

/** One place where a value does not fit: its path (`spec.template.type`, `parts[0].mac`) and what it must be. */
export interface Problem {
  path: string
  must: string
}

export interface CheckOptions {
  /** Check string patterns too (the API server does; kseal's own reading leaves token syntax to decryption, which says more). */
  patterns?: boolean
  /** A null counts as absent, as kseal reads optional fields (the API server refuses it). */
  nullIsAbsent?: boolean
}

/** What a value of a schema must be, in words. */
export function mustBe(s: StructuralSchema): string {
  switch (s.type) {
    case 'object':
      return s.additionalProperties?.type === 'string' ? 'must be a mapping of strings' : 'must be a mapping'
    case 'array':
      return 'must be a list'
    case 'string':
      return 'must be a string'
    case 'integer':
      return 'must be a whole number'
    case 'boolean':
      return 'must be true or false'
  }
}

const join = (path: string, key: string | number) => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key)

/**
 * Checks `value` against `schema` and returns it pruned to what the schema lists, with every problem
 * in document order. A mapping of strings that holds anything else is one problem at the mapping.
 */
export function checkStructure(
  schema: StructuralSchema,
  value: unknown,
  o: CheckOptions = {},
  path = '',
): {value: unknown; problems: Problem[]} {
  const problems: Problem[] = []
  const walk = (s: StructuralSchema, v: unknown, at: string): unknown => {
    const fail = (must: string) => {
      problems.push({path: at, must})
      return v
    }
    switch (s.type) {
      case 'object': {
        if (!isObj(v)) return fail(mustBe(s))
        if (s.additionalProperties?.type === 'string' && Object.values(v).some((x) => typeof x !== 'string')) return fail(mustBe(s))
        for (const r of s.required ?? [])
          if (!(r in v) || (o.nullIsAbsent && v[r] === null)) problems.push({path: join(at, r), must: 'is required'})
        // An object the schema says nothing inside of: metadata is the API server's own (kept), anything else is emptied.
        if (!s.properties && !s.additionalProperties)
          return s['x-kubernetes-preserve-unknown-fields'] || at === 'metadata' ? v : Object.create(null)
        // A null-prototype record: a key named `__proto__` is a key like any other.
        const out = Object.create(null) as Obj
        for (const [k, x] of Object.entries(v)) {
          const sub = s.properties?.[k] ?? s.additionalProperties
          if (x === undefined || (x === null && o.nullIsAbsent)) continue
          if (sub) out[k] = walk(sub, x, join(at, k))
          else if (s['x-kubernetes-preserve-unknown-fields']) out[k] = x
        }
        return out
      }
      case 'array':
        if (!Array.isArray(v)) return fail(mustBe(s))
        if (s.minItems !== undefined && v.length < s.minItems)
          problems.push({path: at, must: `must have at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}`})
        return s.items ? v.map((x, i) => walk(s.items!, x, join(at, i))) : v
      case 'string':
        if (typeof v !== 'string') return fail(mustBe(s))
        if (s.enum && !s.enum.includes(v)) return fail(`must be one of ${s.enum.join(', ')}`)
        if (o.patterns && s.pattern && !new RegExp(s.pattern).test(v)) return fail(`does not match ${s.pattern}`)
        return v
      case 'integer':
        return Number.isInteger(v) ? v : fail(mustBe(s))
      case 'boolean':
        return typeof v === 'boolean' ? v : fail(mustBe(s))
    }
  }
  return {value: value === undefined || (value === null && o.nullIsAbsent) ? value : walk(schema, value, path), problems}
}
