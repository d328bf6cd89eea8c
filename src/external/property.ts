/**
 * JSON values from a store, and `remoteRef.property`: the subset of tidwall/gjson paths that
 * external-secrets users write, with gjson's answers.
 *
 * - A property naming a top-level key literally (`"db.password"` when that key exists) wins, as
 *   external-secrets' `escapeDotsIfRequired` makes it; otherwise it is a path: keys separated by
 *   `.`, `\.` for a dot inside a key, a number indexes an array, a final `#` is an array's length.
 * - Wildcards (`*`, `?`), queries (`#(...)`), `#.` mapping, modifiers (`@reverse`), pipes, multipaths
 *   and literals are refused with a message naming the feature.
 * - The value as gjson's `Result.String()` gives it: a string unquoted, an integer as written, other
 *   numbers in shortest decimal form, `true`/`false`, `""` for null, an object or array as its raw JSON
 *   text (bytes as the store sent them).
 *
 * The parser keeps each value's raw text, refuses duplicate keys (gjson would take the first, Go's
 * json.Unmarshal the last: two readings) and bounds nesting, so no store value can exhaust the stack.
 */
import {KsealError} from '../core/errors.js'

export type JsonNode =
  | {type: 'object'; raw: string; entries: [string, JsonNode][]}
  | {type: 'array'; raw: string; items: JsonNode[]}
  | {type: 'string'; raw: string; value: string}
  | {type: 'number'; raw: string; value: number}
  | {type: 'true' | 'false' | 'null'; raw: string}

export const MAX_JSON_DEPTH = 64

/** Thrown for text that is not JSON; callers add which secret it was. */
export class JsonSyntaxError extends Error {}

/** Parses JSON text (RFC 8259, no duplicate keys, nesting bounded) keeping each value's raw text. */
export function parseJson(text: string): JsonNode {
  let i = 0
  const fail = (why: string): never => {
    throw new JsonSyntaxError(`${why} at offset ${i}`)
  }
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++
  }
  const value = (depth: number): JsonNode => {
    if (depth > MAX_JSON_DEPTH) fail(`nested more than ${MAX_JSON_DEPTH} levels`)
    ws()
    const start = i
    const c = text[i]
    if (c === '{') {
      i++
      const entries: [string, JsonNode][] = []
      const seen = new Set<string>()
      ws()
      if (text[i] === '}') {
        i++
        return {type: 'object', raw: text.slice(start, i), entries}
      }
      for (;;) {
        ws()
        if (text[i] !== '"') fail('expected a string key')
        const k = string()
        if (seen.has(k)) fail('duplicate key in an object')
        seen.add(k)
        ws()
        if (text[i] !== ':') fail('expected :')
        i++
        entries.push([k, value(depth + 1)])
        ws()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === '}') {
          i++
          return {type: 'object', raw: text.slice(start, i), entries}
        }
        fail('expected , or }')
      }
    }
    if (c === '[') {
      i++
      const items: JsonNode[] = []
      ws()
      if (text[i] === ']') {
        i++
        return {type: 'array', raw: text.slice(start, i), items}
      }
      for (;;) {
        items.push(value(depth + 1))
        ws()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === ']') {
          i++
          return {type: 'array', raw: text.slice(start, i), items}
        }
        fail('expected , or ]')
      }
    }
    if (c === '"') {
      const v = string()
      return {type: 'string', raw: text.slice(start, i), value: v}
    }
    for (const lit of ['true', 'false', 'null'] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length
        return {type: lit, raw: lit}
      }
    }
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y
    m.lastIndex = i
    const n = m.exec(text)
    if (!n) fail('unexpected character')
    i += n![0].length
    return {type: 'number', raw: n![0], value: Number(n![0])}
  }
  const string = (): string => {
    const m = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y
    m.lastIndex = i
    const s = m.exec(text)
    if (!s) fail('malformed string')
    i += s![0].length
    return JSON.parse(s![0]) as string
  }
  const root = value(0)
  ws()
  if (i !== text.length) fail('unexpected text after the JSON value')
  return root
}

/** A property path's segments, or a refusal naming the unsupported gjson feature. */
export function parsePropertyPath(property: string): string[] {
  const refuse = (why: string) => new KsealError('ERR_INPUT', `property ${JSON.stringify(property.slice(0, 80))}: ${why}`)
  if (property === '') throw refuse('is empty')
  if (/^[@!]/.test(property)) throw refuse('gjson modifiers and literals (@..., !...) are not supported')
  if (property.startsWith('..')) throw refuse('JSON Lines paths (..) are not supported')
  const segments: string[] = []
  let cur = ''
  for (let i = 0; i < property.length; i++) {
    const c = property[i]
    if (c === '\\' && i + 1 < property.length) {
      cur += property[++i]
      continue
    }
    if (c === '.') {
      segments.push(cur)
      cur = ''
      continue
    }
    if (c === '*' || c === '?') throw refuse('wildcards (* and ?) are not supported; escape them with \\ to match them literally')
    if (c === '|') throw refuse('pipes (|) are not supported')
    if ((c === '[' || c === '{') && cur === '') throw refuse('multipaths ([...], {...}) are not supported')
    if (c === '#' && property[i + 1] === '(') throw refuse('queries (#(...)) are not supported')
    cur += c
  }
  segments.push(cur)
  segments.forEach((s, n) => {
    if (s === '#' && n !== segments.length - 1) throw refuse('mapping over an array (#.) is not supported; only a final # (the length)')
  })
  return segments
}

/** The node at a property: the literal top-level key first, else the path. undefined: not there. */
export function lookupProperty(root: JsonNode, property: string): JsonNode | undefined {
  if (root.type === 'object') {
    const literal = root.entries.find(([k]) => k === property)
    if (literal) return literal[1]
  }
  let node: JsonNode | undefined = root
  for (const seg of parsePropertyPath(property)) {
    if (!node) return undefined
    if (node.type === 'object') {
      node = node.entries.find(([k]) => k === seg)?.[1]
    } else if (node.type === 'array') {
      if (seg === '#') return {type: 'number', raw: String(node.items.length), value: node.items.length}
      node = /^[0-9]+$/.test(seg) ? node.items[Number(seg)] : undefined
    } else {
      return undefined
    }
  }
  return node
}

/** gjson's Result.String() of a node. */
export function nodeString(node: JsonNode): string {
  switch (node.type) {
    case 'string':
      return node.value
    case 'number':
      return /^-?[0-9]+$/.test(node.raw) ? node.raw : formatDecimal(node.value)
    case 'null':
      return ''
    case 'true':
    case 'false':
      return node.type
    default:
      return node.raw
  }
}

/** Go's strconv.FormatFloat(x, 'f', -1, 64): the shortest digits, never an exponent. */
export function formatDecimal(x: number): string {
  const s = String(x)
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s)
  if (!m) return s
  const [, sign, lead, frac = '', e] = m
  const digits = lead + frac
  const point = 1 + Number(e)
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length)
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}
