/**
 * Template values as Go's text/template sees them. A Go string is bytes, and so is a secret value
 * (a DER certificate through `b64dec` must come out byte for byte), so every string here is a byte
 * string: one JavaScript char per byte (latin1). Integers are bigint (Go's int), JSON numbers are
 * number (float64), `fromJson` objects are Maps, arrays are arrays, nil is null.
 *
 * Printing follows fmt's `%v`: float64 in %g's shortest form (`1e+06`, as external-secrets users
 * see it), maps as `map[k:v]` with sorted keys, slices as `[a b]`. JSON follows encoding/json:
 * `<`, `>`, `&`, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD, keys sorted.
 */
import {formatDecimal, type JsonNode} from '../property.js'

export type Value = string | number | bigint | boolean | null | Value[] | Map<string, Value>

/** Bytes → byte string. */
export const fromBytes = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
/** Byte string → bytes. */
export const toBytes = (s: string): Buffer => Buffer.from(s, 'latin1')
/** Byte string (UTF-8 inside) → JavaScript text; invalid sequences become U+FFFD, as Go's conversions do. */
export const decodeText = (s: string): string => Buffer.from(s, 'latin1').toString('utf8')
/** JavaScript text → byte string of its UTF-8. */
export const encodeText = (t: string): string => Buffer.from(t, 'utf8').toString('latin1')

export function typeName(v: Value | undefined): string {
  if (v === null || v === undefined) return 'nil'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'bigint') return 'int'
  if (typeof v === 'number') return 'float64'
  if (typeof v === 'boolean') return 'bool'
  if (Array.isArray(v)) return '[]interface {}'
  return 'map[string]interface {}'
}

/** Go's template truth: false, 0, nil and empty strings, slices and maps are false. */
export function truth(v: Value | undefined): boolean {
  if (v === null || v === undefined) return false
  if (typeof v === 'string') return v.length > 0
  if (typeof v === 'bigint') return v !== 0n
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'boolean') return v
  if (Array.isArray(v)) return v.length > 0
  return v.size > 0
}

/** strconv.FormatFloat(x, 'g', -1, 64), which is what %v prints for a float64. */
export function goFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN'
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf'
  if (x === 0) return Object.is(x, -0) ? '-0' : '0'
  const [mant, expText] = x.toExponential().split('e')
  const exp = Number(expText)
  const digits = mant.replace('-', '').replace('.', '')
  // %g with the shortest precision: exponent form when exp < -4 or exp >= max(digits, 6)... as Go decides it.
  let eprec = 6
  const dp = exp + 1
  if (eprec > digits.length && digits.length >= dp) eprec = digits.length
  if (exp < -4 || exp >= eprec) {
    const sign = exp < 0 ? '-' : '+'
    const abs = Math.abs(exp)
    return `${mant}e${sign}${abs < 10 ? '0' : ''}${abs}`
  }
  return formatDecimal(x)
}

/** fmt's %v. */
export function formatValue(v: Value | undefined): string {
  if (v === null || v === undefined) return '<nil>'
  if (typeof v === 'string') return v
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number') return goFloat(v)
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${v.map(formatValue).join(' ')}]`
  return `map[${[...v.keys()]
    .sort()
    .map((k) => `${k}:${formatValue(v.get(k))}`)
    .join(' ')}]`
}

/** A JSON value from the store's parser (property.ts) as a template value. */
export function fromJsonNode(n: JsonNode): Value {
  switch (n.type) {
    case 'object':
      return new Map(n.entries.map(([k, v]) => [encodeText(k), fromJsonNode(v)]))
    case 'array':
      return n.items.map(fromJsonNode)
    case 'string':
      return encodeText(n.value)
    case 'number':
      return n.value
    case 'null':
      return null
    default:
      return n.type === 'true'
  }
}

/** encoding/json's string encoding of a byte string: HTML-safe as json.Marshal, unless `html` is false (SetEscapeHTML(false)). */
export function jsonString(s: string, html = true): string {
  let out = '"'
  for (const ch of decodeText(s)) {
    const c = ch.codePointAt(0)!
    if (ch === '"') out += '\\"'
    else if (ch === '\\') out += '\\\\'
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (c < 0x20 || (html && (ch === '<' || ch === '>' || ch === '&')) || c === 0x2028 || c === 0x2029)
      out += `\\u${c.toString(16).padStart(4, '0')}`
    else out += ch
  }
  return out + '"'
}

/** json.Marshal of a value, as a byte string (UTF-8); `indent` gives json.MarshalIndent's layout, `html` false leaves <, >, & as they are. */
export function toJson(v: Value | undefined, indent = '', level = '', html = true): string {
  const nl = indent ? '\n' : ''
  const inner = level + indent
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'string') return encodeText(jsonString(v, html))
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`json: unsupported value: ${goFloat(v)}`)
    return String(v)
  }
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]'
    return `[${nl}${v.map((x) => inner + toJson(x, indent, inner, html)).join(`,${nl}`)}${nl}${level}]`
  }
  if (v.size === 0) return '{}'
  const sep = indent ? ': ' : ':'
  const keys = [...v.keys()].sort()
  return `{${nl}${keys.map((k) => `${inner}${encodeText(jsonString(k, html))}${sep}${toJson(v.get(k), indent, inner, html)}`).join(`,${nl}`)}${nl}${level}}`
}

/**
 * A JSON value as Go writes it after decoding it into interface{} values (with UseNumber, as Vault's
 * client does): object keys sorted, strings HTML-safe, numbers as they were written.
 */
export function marshalNode(n: JsonNode): string {
  switch (n.type) {
    case 'object':
      return `{${[...n.entries]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${jsonString(encodeText(k))}:${marshalNode(v)}`)
        .join(',')}}`
    case 'array':
      return `[${n.items.map(marshalNode).join(',')}]`
    case 'string':
      return jsonString(encodeText(n.value))
    default:
      return n.raw
  }
}

/** Go's strconv.Quote (what %q and sprig's quote use), of a byte string. */
export function goQuote(s: string): string {
  const bytes = toBytes(s)
  let out = '"'
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]
    const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0
    const chunk = len > 1 ? bytes.subarray(i, i + len) : undefined
    const decoded = chunk && chunk.length === len ? chunk.toString('utf8') : undefined
    if (len > 1 && decoded && !decoded.includes('\ufffd') && [...decoded].length === 1) {
      const cp = decoded.codePointAt(0)!
      out +=
        /[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]/u.test(decoded) && cp !== 0xa0 && cp !== 0x3000
          ? decoded
          : cp > 0xffff
            ? `\\U${cp.toString(16).padStart(8, '0')}`
            : `\\u${cp.toString(16).padStart(4, '0')}`
      i += len
      continue
    }
    if (len !== 1) {
      out += `\\x${b.toString(16).padStart(2, '0')}`
      i++
      continue
    }
    const ch = String.fromCharCode(b)
    const esc: Record<string, string> = {
      '\x07': '\\a',
      '\b': '\\b',
      '\f': '\\f',
      '\n': '\\n',
      '\r': '\\r',
      '\t': '\\t',
      '\v': '\\v',
      '"': '\\"',
      '\\': '\\\\',
    }
    if (Object.hasOwn(esc, ch)) out += esc[ch]
    else if (b < 0x20 || b === 0x7f) out += `\\x${b.toString(16).padStart(2, '0')}`
    else out += ch
    i++
  }
  // The result is text; back to a byte string.
  return encodeText(out + '"')
}
