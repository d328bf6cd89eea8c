/**
 * What sops's Go code makes of text, reproduced where kseal must compute exactly what sops
 * computed: go-yaml v3's reading of a plain scalar (the types sops hashes into the MAC and records
 * in `type:`), strconv's number and bool parsing and formatting (the bytes sops encrypts and
 * hashes), and time's RFC 3339 round trip (the MAC's additional data).
 *
 * Sources: go-yaml v3 `resolve.go`, Go `strconv.ParseInt/ParseFloat/ParseBool/FormatFloat`,
 * `time.Parse/Format(time.RFC3339)`, sops `ToBytes` and `aes/cipher.go`.
 */

/** A scalar as sops holds it in its tree: the Go type decides how it is hashed and encrypted. */
export type GoScalar =
  | {type: 'null'}
  | {type: 'str'; value: string}
  | {type: 'int'; value: bigint}
  | {type: 'float'; value: number}
  | {type: 'bool'; value: boolean}
  /** Only as a decrypted `type:bytes` value. */
  | {type: 'bytes'; value: Buffer}
  /** An integer beyond int64: go-yaml yields a uint64, which sops cannot hash or encrypt. */
  | {type: 'uint'; value: bigint}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n

const NULLS = new Set(['', '~', 'null', 'Null', 'NULL'])
const TRUES = new Set(['true', 'True', 'TRUE'])
const FALSES = new Set(['false', 'False', 'FALSE'])
const SPECIAL_FLOATS: Record<string, number> = {
  '.nan': NaN,
  '.NaN': NaN,
  '.NAN': NaN,
  '.inf': Infinity,
  '.Inf': Infinity,
  '.INF': Infinity,
  '+.inf': Infinity,
  '+.Inf': Infinity,
  '+.INF': Infinity,
  '-.inf': -Infinity,
  '-.Inf': -Infinity,
  '-.INF': -Infinity,
}
/** go-yaml's `yamlStyleFloat`. */
const YAML_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/

/**
 * go-yaml v3's resolution of an untagged plain scalar (its `resolve("", s)`), as decoded into an
 * `interface{}`: timestamps stay strings there, so they are strings here. `<<` is reported as a
 * string; callers refuse merge keys before they get here.
 */
export function resolvePlain(s: string): GoScalar {
  if (NULLS.has(s)) return {type: 'null'}
  if (TRUES.has(s)) return {type: 'bool', value: true}
  if (FALSES.has(s)) return {type: 'bool', value: false}
  if (s in SPECIAL_FLOATS) return {type: 'float', value: SPECIAL_FLOATS[s]}
  const c = s[0]
  if (c === '.') {
    const f = parseDecimalFloat(s)
    return f === null ? {type: 'str', value: s} : {type: 'float', value: f}
  }
  if (!/[-+0-9]/.test(c)) return {type: 'str', value: s}
  const plain = s.replace(/_/g, '')
  const int = parseGoInt(plain)
  if (int !== null) {
    if (int >= INT64_MIN && int <= INT64_MAX) return {type: 'int', value: int}
    if (int >= 0n && int <= UINT64_MAX && !/^[-+]/.test(plain)) return {type: 'uint', value: int}
  }
  if (YAML_FLOAT.test(plain)) {
    const f = parseDecimalFloat(plain)
    if (f !== null) return {type: 'float', value: f}
  }
  return {type: 'str', value: s}
}

/**
 * `strconv.ParseInt(s, 0, 64)`'s syntax (range left to the caller): a sign, then `0x`/`0o`/`0b`,
 * a leading `0` for octal, or decimal digits.
 */
function parseGoInt(s: string): bigint | null {
  const m = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(s)
  if (!m) return null
  const body = m[2]
  let v: bigint
  if (/^0[oO]/.test(body)) v = BigInt('0o' + body.slice(2))
  else if (/^0[xXbB]/.test(body)) v = BigInt(body.toLowerCase())
  else if (body.length > 1 && body.startsWith('0')) v = BigInt('0o' + body.slice(1))
  else v = BigInt(body)
  return m[1] === '-' ? -v : v
}

/** A decimal float as `strconv.ParseFloat` reads it; null when malformed or out of range (Go's ErrRange). */
export function parseDecimalFloat(s: string): number | null {
  if (!YAML_FLOAT.test(s)) return null
  const f = Number(s)
  return Number.isFinite(f) ? f : null
}

/** `strconv.Atoi` / `ParseInt(s, 10, 64)`: decimal only, with an optional sign; null when malformed or out of int64 range. */
export function parseDecimalInt(s: string): bigint | null {
  if (!/^[-+]?[0-9]+$/.test(s)) return null
  const v = BigInt(s)
  return v >= INT64_MIN && v <= INT64_MAX ? v : null
}

/** `strconv.ParseFloat(s, 64)` for what sops writes and reads: decimal forms, `inf`/`infinity`/`nan` in any case. */
export function parseGoFloat(s: string): number | null {
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(s)
  if (special) return special[2].toLowerCase() === 'nan' ? (special[1] ? null : NaN) : special[1] === '-' ? -Infinity : Infinity
  return parseDecimalFloat(s)
}

/** `strconv.ParseBool`. */
export function parseGoBool(s: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false
  return null
}

/** `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as f, never in exponent form. */
export function formatGoFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN'
  if (f === Infinity) return '+Inf'
  if (f === -Infinity) return '-Inf'
  if (f === 0) return Object.is(f, -0) ? '-0' : '0'
  // toExponential() with no argument gives the shortest digits that round-trip, as Go's -1 precision does.
  const m = /^(-?)(\d)(?:\.(\d+))?e([-+]\d+)$/.exec(f.toExponential())!
  const digits = m[2] + (m[3] ?? '')
  const point = Number(m[4]) + 1 // digits before the decimal point
  let out: string
  if (point <= 0) out = '0.' + '0'.repeat(-point) + digits
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length)
  else out = digits.slice(0, point) + '.' + digits.slice(point)
  return m[1] + out
}

/**
 * sops's `ToBytes`: the bytes a value is hashed as in the MAC, which are also the bytes its
 * `Cipher.Encrypt` encrypts: strings as they are, ints in decimal, floats by `formatGoFloat`, bools
 * as `True`/`False`. Null values are never hashed (callers skip them).
 */
export function goBytes(v: Exclude<GoScalar, {type: 'null'} | {type: 'uint'}>): Buffer {
  switch (v.type) {
    case 'str':
      return Buffer.from(v.value, 'utf8')
    case 'int':
      return Buffer.from(v.value.toString(), 'ascii')
    case 'float':
      return Buffer.from(formatGoFloat(v.value), 'ascii')
    case 'bool':
      return Buffer.from(v.value ? 'True' : 'False', 'ascii')
    case 'bytes':
      return v.value
  }
}

const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/**
 * `t, _ := time.Parse(time.RFC3339, s); t.Format(time.RFC3339)`: what sops uses as the MAC's
 * additional data. Fractional seconds are accepted and dropped; a zero offset becomes `Z`. Null
 * when Go would not parse it.
 */
export function rfc3339RoundTrip(s: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|([-+])(\d{2}):(\d{2}))$/.exec(s)
  if (!m) return null
  const [year, month, day, hour, min, sec] = m.slice(1, 7).map(Number)
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  if (month < 1 || month > 12 || day < 1 || day > (month === 2 && !leap ? 28 : DAYS[month - 1]) || hour > 23 || min > 59 || sec > 59)
    return null
  if (m[8] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return null
  const zone = m[7] === 'Z' || (m[9] === '00' && m[10] === '00') ? 'Z' : m[7]
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone}`
}

/** `time.Now().UTC().Format(time.RFC3339)`. */
export function formatRfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}
