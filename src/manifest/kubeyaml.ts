/**
 * YAML as Kubernetes reads it. kubectl (like kustomize, Argo CD and the API server's YAML endpoint)
 * turns YAML into JSON with sigs.k8s.io/yaml over go-yaml v2, which reads plain scalars differently
 * from YAML 1.1 as the `yaml` package implements it:
 *
 * - no sexagesimal numbers and no timestamps: `12:30:45`, `1:30` and `2024-01-01` are strings;
 * - integers as Go's strconv.ParseInt(s, 0, 64) reads them once every `_` is removed: `0o755`,
 *   `0755` and `0_7_5_5` are 493, `0b-1` is -1, a hex or binary number beyond 64 bits is a string;
 * - floats as go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (after removing `_`)
 *   or, for a scalar that starts with `.`, strconv.ParseFloat: `.5_5` is 0.55; one that overflows
 *   (`1e400`) is a string;
 * - `y`, `Y`, `n`, `N`, `yes`, `on`, `off`, ... are booleans, as in YAML 1.1;
 * - a mapping key that is not a string becomes one: ints in decimal, floats as Go's
 *   FormatFloat(f, 'g', -1, 32) writes them (`1e6` → "1e+06", `.Inf` → ".inf"), booleans as
 *   "true"/"false"; a null or unsigned 64-bit key is refused.
 *
 * This module is that reading (go-yaml v2's resolve.go and sigs.k8s.io/yaml's key conversion, as
 * vendored by kubectl 1.32), the `yaml` package options (KUBE_YAML) under which every manifest kseal
 * parses reads the same — values and keys come out as kubectl's JSON would hold them — and the
 * checks for whole files kubectl would not read (checkKubeText). test/kubectl-oracle.test.ts checks
 * it against kubectl itself.
 */
import {CST, type Document, Lexer, Scalar, type ScalarTag, type SchemaOptions, type ToStringOptions, visit} from 'yaml'
import {KsealError} from '../core/errors.js'
import {jsonSyntaxError} from '../core/json.js'

export type KubeScalar =
  | {type: 'string'}
  | {type: 'null'}
  | {type: 'bool'; value: boolean}
  /** `unsigned`: above int64, read as Go's uint64. */
  | {type: 'int'; value: bigint; unsigned: boolean}
  | {type: 'float'; value: number}
  | {type: 'merge'}

const STRING: KubeScalar = {type: 'string'}

/** go-yaml v2's resolveMap: plain scalars read by exact spelling. */
const BY_SPELLING = new Map<string, KubeScalar>()
const spell = (value: KubeScalar, ...spellings: string[]) => spellings.forEach((s) => BY_SPELLING.set(s, value))
spell({type: 'bool', value: true}, 'y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON')
spell({type: 'bool', value: false}, 'n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF')
spell({type: 'null'}, '', '~', 'null', 'Null', 'NULL')
spell({type: 'float', value: NaN}, '.nan', '.NaN', '.NAN')
spell({type: 'float', value: Infinity}, '.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF')
spell({type: 'float', value: -Infinity}, '-.inf', '-.Inf', '-.INF')
spell({type: 'merge'}, '<<')

const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n

/** strconv.ParseInt/ParseUint(s, 0, 64) syntax: sign, then 0b/0o/0x, a leading-0 octal, or decimal. */
const GO_INT = /^([+-]?)(?:0[bB]([01]+)|0[oO]([0-7]+)|0[xX]([0-9a-fA-F]+)|0([0-7]*)|([1-9][0-9]*))$/
const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/
/** strconv.ParseFloat's syntax for text that starts with `.` (underscores checked separately). */
const GO_DOT_FLOAT = /^\.[0-9_]*[0-9][0-9_]*(?:[eE][-+]?[0-9][0-9_]*)?$/

/** strconv.ParseInt(s, 0, 64), then ParseUint(s, 0, 64): the integer, or null when neither reads it. */
function goInteger(s: string): {value: bigint; unsigned: boolean} | null {
  const m = GO_INT.exec(s)
  if (!m) return null
  const [, sign, bin, oct, hex, zeroOct, dec] = m
  const magnitude =
    bin !== undefined
      ? BigInt(`0b${bin}`)
      : oct !== undefined
        ? BigInt(`0o${oct}`)
        : hex !== undefined
          ? BigInt(`0x${hex}`)
          : zeroOct !== undefined
            ? BigInt(`0o${zeroOct || '0'}`)
            : BigInt(dec)
  return inRange(sign, magnitude)
}

/** strconv.ParseInt(s, 2, 64), then ParseUint(s, 2, 64): go-yaml's own fallback for `0b...`. */
function goBinary(s: string): {value: bigint; unsigned: boolean} | null {
  const m = /^([+-]?)([01]+)$/.exec(s)
  return m ? inRange(m[1], BigInt(`0b${m[2]}`)) : null
}

/** An int64 (ParseInt), else, without a sign, a uint64 (ParseUint); null when out of both ranges. */
function inRange(sign: string, magnitude: bigint): {value: bigint; unsigned: boolean} | null {
  if (sign === '-') return magnitude <= INT64_MAX + 1n ? {value: -magnitude, unsigned: false} : null
  if (magnitude <= INT64_MAX) return {value: magnitude, unsigned: false}
  return sign === '' && magnitude <= UINT64_MAX ? {value: magnitude, unsigned: true} : null
}

/** Go's strconv.underscoreOK: each `_` sits between digits (or a base prefix and a digit). */
function underscoreOK(s: string): boolean {
  let saw = '^'
  let i = 0
  if (s[0] === '-' || s[0] === '+') s = s.slice(1)
  let hex = false
  if (s.length >= 2 && s[0] === '0' && /[bBoOxX]/.test(s[1])) {
    i = 2
    saw = '0'
    hex = s[1] === 'x' || s[1] === 'X'
  }
  for (; i < s.length; i++) {
    const c = s[i]
    if ((c >= '0' && c <= '9') || (hex && /[a-fA-F]/.test(c))) {
      saw = '0'
    } else if (c === '_') {
      if (saw !== '0') return false
      saw = '_'
    } else {
      if (saw === '_') return false
      saw = '!'
    }
  }
  return saw !== '_'
}

/** A float as strconv.ParseFloat returns it without error: finite (an overflow is an error; it reads as a string). */
function goFloat(s: string): KubeScalar {
  const f = Number(s.replace(/_/g, ''))
  return Number.isFinite(f) ? {type: 'float', value: f} : STRING
}

/** What go-yaml v2 makes of a plain (unquoted, untagged) scalar: its resolve(). */
export function resolvePlain(s: string): KubeScalar {
  const known = BY_SPELLING.get(s)
  if (known) return known
  const c = s[0]
  if (c === '.') return GO_DOT_FLOAT.test(s) && underscoreOK(s) ? goFloat(s) : STRING
  if (!((c >= '0' && c <= '9') || c === '+' || c === '-')) return STRING
  // A timestamp (2024-01-01) also reads as a string, and nothing below reads one: no check needed.
  const plain = s.replace(/_/g, '')
  const int = goInteger(plain)
  if (int) return {type: 'int', ...int}
  if (YAML_STYLE_FLOAT.test(plain)) {
    const f = goFloat(plain)
    if (f.type === 'float') return f
  }
  // go-yaml's own `0b` branch: the rest read in base 2, sign included (`0b-1` is -1).
  const bin = plain.startsWith('0b') ? goBinary(plain.slice(2)) : plain.startsWith('-0b') ? goBinary(`-${plain.slice(3)}`) : null
  return bin ? {type: 'int', ...bin} : STRING
}

/** The JSON value kubectl makes of a plain scalar (a float that JSON cannot hold, ±Inf or NaN, stays a number here). */
export function kubeValue(s: string): string | number | boolean | null {
  const r = resolvePlain(s)
  switch (r.type) {
    case 'string':
    case 'merge':
      return s
    case 'null':
      return null
    case 'bool':
      return r.value
    case 'int':
      return Number(r.value)
    case 'float':
      return r.value
  }
}

/**
 * The mapping key kubectl makes of a plain scalar (sigs.k8s.io/yaml turns every key into a string),
 * or null when it refuses the key (null, a uint64, the merge key used as an ordinary key).
 */
export function kubeKey(s: string): string | null {
  const r = resolvePlain(s)
  switch (r.type) {
    case 'string':
      return s
    case 'bool':
      return String(r.value)
    case 'int':
      return r.unsigned ? null : r.value.toString()
    case 'float':
      return formatFloat32(r.value)
    default:
      return null
  }
}

/** Go's strconv.FormatFloat(f, 'g', -1, 32), with go-yaml's spellings of the infinities and NaN. */
export function formatFloat32(x: number): string {
  const f = Math.fround(x)
  if (Number.isNaN(f)) return '.nan'
  if (f === Infinity) return '.inf'
  if (f === -Infinity) return '-.inf'
  if (f === 0) return Object.is(f, -0) ? '-0' : '0'
  // The shortest decimal that reads back as the same float32 (the closest one of that length).
  for (let p = 1; p <= 9; p++) {
    const [mantissa, e] = Math.abs(f)
      .toExponential(p - 1)
      .split('e')
    const n = Number(mantissa.replace('.', ''))
    for (const d of [n, n - 1, n + 1]) {
      if (d <= 0 || Math.fround(Number(`${d}e${Number(e) - (p - 1)}`)) !== Math.abs(f)) continue
      const digits = String(d).replace(/0+$/, '')
      const exp = Number(e) + (String(d).length - p)
      return (f < 0 ? '-' : '') + goG(digits, exp)
    }
  }
  throw new Error(`no float32 spelling for ${x}`)
}

/** %g of significant digits d₁d₂… × 10^exp (exp: the exponent of d₁), as Go writes the shortest form. */
function goG(digits: string, exp: number): string {
  if (exp < -4 || exp >= 6) {
    const e = `e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
    return digits[0] + (digits.length > 1 ? `.${digits.slice(1)}` : '') + e
  }
  if (exp < 0) return `0.${'0'.repeat(-exp - 1)}${digits}`
  const whole = digits.slice(0, exp + 1).padEnd(exp + 1, '0')
  const frac = digits.slice(exp + 1)
  return frac ? `${whole}.${frac}` : whole
}

/** Every plain key but `<<` (which the merge tag keeps): kubectl's key string, or null. */
const kubeKeyTag: ScalarTag = {
  tag: 'tag:yaml.org,2002:str',
  default: 'key',
  test: /^(?!<<$)/,
  resolve: (s) => kubeKey(s),
}

/** Every plain value but `<<`: kubectl's JSON value. */
const kubeValueTag: ScalarTag = {
  tag: 'tag:yaml.org,2002:str',
  default: true,
  test: /^(?!<<$)/,
  resolve: (s) => kubeValue(s),
}

/** A test that asks resolvePlain: true for a string kubectl reads as a null, boolean or number. */
class KubeTypedTest extends RegExp {
  constructor() {
    super('(?!)')
  }

  override test(s: string): boolean {
    const t = resolvePlain(s).type
    return t !== 'string' && t !== 'merge'
  }
}

/** For writing only (the value tag above resolves first): quotes a string kubectl would read as something else, such as `0o755`. */
const kubeTypedTag: ScalarTag = {
  tag: 'tag:kseal.dev,2025:kube-typed',
  default: true,
  test: new KubeTypedTest(),
  resolve: (s) => s,
}

/**
 * `yaml` package options that read plain scalars as kubectl does. kseal's key and value tags come
 * before YAML 1.1's and match every plain scalar but `<<`, so those never resolve one; they stay for
 * explicit tags (`!!int`) and for writing, where their tests, with kubeTypedTag's, quote every string
 * that kubectl or any YAML 1.1 reader would take for something else (`"0o755"`, `"1:30"`). Named as
 * strings, the key and value tags never make the writer quote a string, and an explicit `!!str`
 * still finds the plain string tag.
 */
export const KUBE_YAML = {
  version: '1.1',
  customTags: (tags) => [kubeKeyTag, kubeValueTag, kubeTypedTag, ...tags],
} as const satisfies SchemaOptions & {version: '1.1'}

/**
 * Refuses text kubectl would not read as kseal does:
 *
 * - a file that is JSON by name (`*.json`) or by its first character (`{` or `[`, after a
 *   byte-order mark and spaces) must be valid JSON: kubectl reads it with a JSON decoder, which
 *   refuses the trailing commas, comments and unquoted keys that YAML's flow syntax lets through;
 * - YAML may hold only YAML's printable characters (go-yaml's reader refuses the whole file
 *   otherwise): no C0 control but tab and line breaks, no DEL, no C1 control but NEL, no U+FFFE or
 *   U+FFFF; no NEL, which go-yaml takes for a line break even inside quotes, and no LS or PS outside
 *   quotes, where it takes them for line breaks too (ending a comment, so that what follows is
 *   YAML to kubectl alone). Such a character belongs in a double-quoted string as an escape (`\x7f`,
 *   `\N`, `\L`, `\P`).
 */
export function checkKubeText(text: string, file: string | undefined): void {
  const from = text.startsWith('\uFEFF') ? 1 : 0
  const first = /\S/.exec(text.slice(from))?.[0]
  const byName = file !== undefined && /\.json$/i.test(file)
  if (first !== undefined && (byName || first === '{' || first === '[')) {
    const e = jsonSyntaxError(text, from)
    if (!e) return
    const {line, col} = position(text, e.offset)
    const hint = byName && first !== '{' && first !== '[' ? ' (a .json file must hold JSON)' : ''
    throw new KsealError('ERR_INPUT', `malformed JSON at line ${line}, column ${col}: ${e.reason}${hint}`, {file})
  }
  const unprintable = NOT_PRINTABLE.exec(text)
  const lexed = unprintable ? null : lexicalProblem(text)
  const at = unprintable ? unprintable.index : lexed?.at
  if (at === undefined) return
  const {line, col} = position(text, at)
  if (lexed?.tab) {
    throw new KsealError(
      'ERR_INPUT',
      `a tab where a block scalar's indentation is read, at line ${line}, column ${col} (kubectl refuses the file); indent with spaces, or write the value double-quoted with \\t`,
      {file},
    )
  }
  const code = text.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0')
  const why =
    unprintable && unprintable[0] !== '\x85'
      ? 'is not allowed in YAML (kubectl refuses the file)'
      : "is a line break to kubectl's YAML reader (YAML 1.1), and not to others"
  throw new KsealError(
    'ERR_INPUT',
    `character U+${code} at line ${line}, column ${col} ${why}; write it as an escape in a double-quoted string`,
    {file},
  )
}

/** Characters go-yaml's reader refuses anywhere, and NEL, which it folds even inside quotes. */
const NOT_PRINTABLE = /[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u{D800}-\u{DFFF}\u{FFFE}\u{FFFF}]/u

/**
 * The offset of an LS or PS outside a quoted scalar, or null. go-yaml keeps them inside quotes, as the
 * `yaml` package does, but elsewhere takes them for line breaks: a plain or block scalar breaks
 * there, and a comment ends, so text after one in a comment is read as YAML by kubectl alone.
 */
/**
 * What only the tokens show (the text is lexed only when it holds an LS, PS or a tab):
 *
 * - an LS or PS that go-yaml reads as a line break where the `yaml` package reads a character: in a
 *   plain or block scalar (which break there) or a comment (which ends there, so what follows is
 *   YAML to kubectl alone). In a quoted scalar go-yaml keeps it, but still folds away the spaces
 *   around it, and a key cannot hold it;
 * - a tab where go-yaml reads a block scalar's indentation: on its first lines, before the
 *   indentation is known (unless the header gives it), and on a later line less indented than the
 *   block. go-yaml refuses the file; the `yaml` package reads the tab as content.
 */
function lexicalProblem(text: string): {at: number; tab: boolean} | null {
  if (!/[\u2028\u2029\t]/.test(text)) return null
  const tokens = [...new Lexer().lex(text)]
  let at = 0
  /** The header of the block scalar whose body comes next (`|-`, `>2`), or null. */
  let header: string | null = null
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]
    if (token === CST.DOCUMENT || token === CST.FLOW_END || token === CST.SCALAR) continue // markers, not source
    const quoted = token[0] === '"' || token[0] === "'"
    const separator = quoted ? quotedLineSeparator(token, isKey(tokens, i)) : /[\u2028\u2029]/.exec(token)?.index
    if (separator !== undefined) return {at: at + separator, tab: false}
    // A block scalar's body is the token after its header (and the spaces, comment and line break after that).
    if (header !== null && tokens[i - 1] === CST.SCALAR) {
      const tab = /\d/.test(header) ? -1 : blockIndentTab(token)
      if (tab >= 0) return {at: at + tab, tab: true}
      header = null
    }
    if (/^[|>]/.test(token)) header = token
    at += token.length
  }
  return null
}

/** Whether the token at i is a mapping key: a `:` follows it, after spaces. */
function isKey(tokens: string[], i: number): boolean {
  let j = i + 1
  while (j < tokens.length && /^[ \t]+$/.test(tokens[j])) j++
  return tokens[j] === ':'
}

/**
 * An LS or PS in a quoted scalar that go-yaml reads differently: in a key (which cannot span a line
 * break), or next to a space, tab or line break (which go-yaml folds away around a break).
 */
function quotedLineSeparator(token: string, key: boolean): number | undefined {
  for (const m of token.matchAll(/[\u2028\u2029]/g)) {
    if (key || /[ \t\r\n]/.test(token[m.index - 1] ?? '') || /[ \t\r\n]/.test(token[m.index + 1] ?? '')) return m.index
  }
  return undefined
}

/** In a block scalar's body with no indentation indicator: the offset of a tab go-yaml refuses, or -1. */
function blockIndentTab(body: string): number {
  let indent = -1
  let offset = 0
  for (const line of body.split('\n')) {
    const spaces = /^ */.exec(line)![0].length
    if (indent < 0) {
      if (line[spaces] === '\t') return offset + spaces
      if (spaces < line.length) indent = spaces
    } else if (spaces < indent && line[spaces] === '\t') {
      return offset + spaces
    }
    offset += line.length + 1
  }
  return -1
}

/** Characters go-yaml takes only as escapes in a double-quoted string: raw, it refuses or folds them. */
const ESCAPE_ONLY = /[\x7f-\x9f\u2028\u2029\ufffe\uffff]/

/**
 * A document written as kubectl reads it back. The `yaml` writer keeps DEL, C1 controls, NEL, LS,
 * PS, U+FFFE and U+FFFF raw — in a plain scalar even (LS, PS) — and may put a tab where go-yaml reads
 * a block scalar's indentation; go-yaml refuses or folds all of these. So a string holding one is
 * written double-quoted, and each such character as an escape.
 */
export function kubeYamlString(doc: Document, options: ToStringOptions = {}): string {
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && (ESCAPE_ONLY.test(node.value) || /(^|\n) *\t/.test(node.value))) node.type = Scalar.QUOTE_DOUBLE
    },
  })
  return doc
    .toString(options)
    .replace(new RegExp(ESCAPE_ONLY.source, 'g'), (c) =>
      c < '\u0100' ? `\\x${c.charCodeAt(0).toString(16)}` : `\\u${c.charCodeAt(0).toString(16)}`,
    )
}

/** 1-based line and column of an offset; a byte-order mark that opens the text takes no column. */
function position(text: string, offset: number): {line: number; col: number} {
  const from = text.startsWith('\uFEFF') ? 1 : 0
  const before = text.slice(from, offset)
  return {line: before.split('\n').length, col: before.length - before.lastIndexOf('\n')}
}
