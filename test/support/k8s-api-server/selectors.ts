/** Label and field selectors, parsed and matched as the apiserver does. */
import {errors, goQuote} from './status.js'
import type {KubeObject, ResourceDefinition} from './types.js'
import {isLabelValue, isQualifiedName} from './validation.js'

export type LabelRequirement =
  {key: string; op: 'in' | 'notin'; values: string[]} | {key: string; op: 'exists' | '!'} | {key: string; op: 'gt' | 'lt'; n: number}

export function parseLabelSelector(s: string | undefined): LabelRequirement[] {
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

export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
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

export interface FieldRequirement {
  field: string
  value: string
  negate: boolean
}

export function parseFieldSelector(s: string | undefined, def: ResourceDefinition, labelSelector: string | undefined): FieldRequirement[] {
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

export function fieldValue(def: ResourceDefinition, obj: KubeObject, field: string): string {
  if (field === 'metadata.name') return String(obj.metadata?.name ?? '')
  if (field === 'metadata.namespace') return String(obj.metadata?.namespace ?? '')
  return String(def.fieldSelectors?.[field]?.(obj) ?? '')
}
