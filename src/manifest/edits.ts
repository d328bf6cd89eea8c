/**
 * Byte-exact rewriting: every change kseal makes to a manifest is a replacement of one source
 * range (a value's scalar, the envelope's lines), so everything outside those ranges — comments,
 * quoting, indentation, blank lines, CRLF, a BOM — stays exactly as the user wrote it.
 */
import {parse, type Pair, Scalar, type YAMLMap} from 'yaml'
import {KUBE_YAML, resolvePlain} from './kubeyaml.js'

export interface Edit {
  start: number
  end: number
  text: string
}

export function applyEdits(text: string, edits: readonly Edit[]): string {
  const sorted = [...edits].sort((a, b) => a.start - b.start)
  let out = ''
  let at = 0
  for (const e of sorted) {
    if (e.start < at) throw new Error('overlapping edits')
    out += text.slice(at, e.start) + e.text
    at = e.end
  }
  return out + text.slice(at)
}

function lineStart(text: string, pos: number): number {
  return text.lastIndexOf('\n', pos - 1) + 1
}

/** The position after the line break that ends the line containing pos (or the end of text). */
function afterLine(text: string, pos: number): number {
  const nl = text.indexOf('\n', pos)
  return nl === -1 ? text.length : nl + 1
}

/** The text of pos's line before pos; a byte-order mark that opens the text is not on the line. */
function linePrefix(text: string, pos: number): string {
  const start = lineStart(text, pos)
  return text.slice(start === 0 && text.startsWith('\uFEFF') ? 1 : start, pos)
}

function column(text: string, pos: number): number {
  return linePrefix(text, pos).length
}

interface BlockHeader {
  /** The header line as written, e.g. `|-` or `>+2 # comment`. */
  header: string
  chomp: 'clip' | 'strip' | 'keep'
  explicitIndent: boolean
  /** Indentation of the content lines. */
  indent: string
}

function blockHeader(text: string, node: Scalar): BlockHeader {
  const start = node.range![0]
  const nl = text.indexOf('\n', start)
  let header = text.slice(start, nl === -1 ? text.length : nl)
  if (header.endsWith('\r')) header = header.slice(0, -1)
  const ind = /^[|>]([-+]?)(\d?)([-+]?)/.exec(header)
  const chompChar = (ind?.[1] || ind?.[3]) ?? ''
  // The mapping the block belongs to is indented as far as its key, which starts the line (after any
  // `- ` entries, as in `  - key: |`); an explicit indicator counts from there.
  const parent = /^(?: *- +)* */.exec(linePrefix(text, start))![0].length
  let indent = ind?.[2] ? ' '.repeat(parent + Number(ind[2])) : ''
  // Otherwise: the first non-blank line after the header; with none (an empty or whitespace-only
  // block), two deeper than the key.
  for (let at = nl + 1; indent === '' && nl !== -1 && at < node.range![1]; at = afterLine(text, at)) {
    const line = text.slice(at, afterLine(text, at)).replace(/\r?\n$/, '')
    if (/[^ ]/.test(line)) indent = /^ */.exec(line)![0] // only spaces make a line blank to YAML
  }
  if (indent === '') indent = ' '.repeat(parent + 2)
  return {header, chomp: chompChar === '-' ? 'strip' : chompChar === '+' ? 'keep' : 'clip', explicitIndent: Boolean(ind?.[2]), indent}
}

const isBlock = (n: Scalar) => n.type === Scalar.BLOCK_LITERAL || n.type === Scalar.BLOCK_FOLDED

/** Replaces a plaintext value's scalar with a token written in the same style. */
export function tokenEdit(text: string, node: Scalar, token: string, eol: string): Edit {
  const [start, end] = node.range!
  if (isBlock(node)) {
    const h = blockHeader(text, node)
    return {start, end, text: h.header + eol + h.indent + token + eol}
  }
  const written = node.type === Scalar.QUOTE_DOUBLE ? `"${token}"` : node.type === Scalar.QUOTE_SINGLE ? `'${token}'` : token
  return {start, end, text: written}
}

/**
 * Whether a plain scalar is something other than this string to Kubernetes (null, a boolean, a
 * number, the merge key): kubectl's reading, not YAML 1.1's, so that a value written plain before
 * encryption (`12:30`, `2024-01-01`) is written plain again, byte for byte.
 */
const implicitlyTyped = (value: string): boolean => resolvePlain(value).type !== 'string'

/** A value with no indicator, comment or mapping syntax anywhere: only its implicit type can make it more than a string. */
const SIMPLE_PLAIN = /^[^-?:,[\]{}#&*!|>'"%@`\s][^:#\n\r\t]*$/

/**
 * Characters a YAML reader may not take literally, so they are only ever written escaped: C0 and C1
 * controls other than tab, YAML 1.1's extra line breaks (NEL, LS, PS, which Go's YAML reader folds),
 * and U+FEFF (which a reader may take for a byte-order mark).
 */
const UNSAFE_LITERAL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ufeff]/

function safePlain(value: string, flow: boolean): boolean {
  // Only space and tab are whitespace to YAML; String.trim() would also strip NBSP, U+3000 and the
  // like, which a plain scalar holds as ordinary characters.
  if (value === '' || /^[ \t]|[ \t]$/.test(value) || UNSAFE_LITERAL.test(value)) return false
  if (flow && /[,[\]{}]/.test(value)) return false
  if (SIMPLE_PLAIN.test(value)) return !implicitlyTyped(value)
  if (value.includes(': ') || value.includes(' #') || value.includes(':\t') || value.includes('\t#')) return false
  // Whatever else could make it more than a string (indicators, anchors, tags) shows when it is read
  // back on its own.
  try {
    return parse(value, {...KUBE_YAML, strict: true, logLevel: 'error'}) === value
  } catch {
    return false
  }
}

const hex = (c: string, width: number) => c.charCodeAt(0).toString(16).padStart(width, '0')

/** YAML's own short escapes, as Go's YAML writer and the yaml package both spell them. */
export const YAML_ESCAPES: Record<string, string> = {
  '\0': '\\0',
  '\x07': '\\a',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\v': '\\v',
  '\f': '\\f',
  '\r': '\\r',
  '\x1b': '\\e',
  '"': '\\"',
  '\\': '\\\\',
  '\x85': '\\N',
  '\u2028': '\\L',
  '\u2029': '\\P',
}

/**
 * A double-quoted string that every reader takes back as exactly `value`. In a flow collection (JSON
 * among them) it is JSON, so a JSON file stays JSON; elsewhere it uses YAML's escapes.
 */
export function doubleQuoted(value: string, flow: boolean): string {
  if (flow) return JSON.stringify(value).replace(/[\x7f-\x9f\u2028\u2029\ufeff]/g, (c) => `\\u${hex(c, 4)}`)
  return `"${value.replace(/[\x00-\x1f"\\\x7f-\x9f\u2028\u2029\ufeff]/g, (c) => YAML_ESCAPES[c] ?? (c < '\u0100' ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`))}"`
}

/**
 * Replaces a token's scalar with the plaintext value, in the style the token was written in —
 * which is the style the value had before it was encrypted. Where that style cannot hold the value
 * exactly, a double-quoted string is written instead, which every YAML reader reads the same.
 */
export function valueEdit(text: string, node: Scalar, value: string, eol: string, flow: boolean): Edit {
  const [start, end] = node.range!
  const quoted = doubleQuoted(value, flow)
  switch (node.type) {
    case Scalar.QUOTE_DOUBLE:
      return {start, end, text: quoted}
    case Scalar.QUOTE_SINGLE:
      return {start, end, text: UNSAFE_LITERAL.test(value) ? quoted : `'${value.replace(/'/g, "''")}'`}
    case Scalar.BLOCK_LITERAL:
    case Scalar.BLOCK_FOLDED: {
      const h = blockHeader(text, node)
      // A folded block keeps its style when the value is one line; otherwise folding would change the
      // text, and the value goes back as a literal block with the same chomping.
      const oneLine = !(h.chomp === 'strip' ? value : value.slice(0, -1)).includes('\n')
      const header = node.type === Scalar.BLOCK_FOLDED && !oneLine ? h.header.replace(/^>/, '|') : h.header
      const fits =
        !/\t/.test(value) &&
        !UNSAFE_LITERAL.test(value.replace(/\n/g, '')) &&
        !(value.startsWith(' ') && !h.explicitIndent) &&
        (h.chomp === 'strip'
          ? !value.endsWith('\n')
          : h.chomp === 'clip'
            ? value === '' || (value.endsWith('\n') && !value.endsWith('\n\n'))
            : value === '' || value.endsWith('\n'))
      // A block's range takes in its last line break; a quoted string put in its place needs one.
      if (!fits) return {start, end, text: quoted + (text[end - 1] === '\n' ? eol : '')}
      if (value === '') return {start, end, text: header + eol}
      const body = h.chomp === 'strip' ? value : value.slice(0, -1)
      const lines = body.split('\n').map((l) => (l === '' ? '' : h.indent + l))
      return {start, end, text: header + eol + lines.join(eol) + eol}
    }
    default:
      return {start, end, text: safePlain(value, flow) ? value : quoted}
  }
}

function firstKeyPos(map: YAMLMap): number {
  return (map.items[0].key as Scalar).range![0]
}

/** Renders the envelope for a block mapping whose keys sit at column `pad`. */
function envelopeBlock(env: Record<string, unknown>, key: string, pad: string, eol: string): string {
  const lines: string[] = [`${pad}${key}:`]
  const q = (v: unknown) => JSON.stringify(v)
  for (const [k, v] of Object.entries(env)) {
    if (Array.isArray(v)) {
      lines.push(`${pad}  ${k}:`)
      for (const item of v as Record<string, unknown>[]) {
        Object.entries(item).forEach(([ik, iv], i) => lines.push(`${pad}    ${i === 0 ? '- ' : '  '}${ik}: ${q(iv)}`))
      }
    } else {
      lines.push(`${pad}  ${k}: ${q(v)}`)
    }
  }
  return lines.join(eol) + eol
}

function envelopeFlow(text: string, map: YAMLMap, env: Record<string, unknown>, key: string, eol: string): string {
  const first = firstKeyPos(map)
  const pretty = text.slice(map.range![0], first).includes('\n')
  if (!pretty) return `,${JSON.stringify(key)}:${JSON.stringify(env)}`
  const pad = ' '.repeat(column(text, first))
  const body = JSON.stringify(env, null, 2)
    .split('\n')
    .join(eol + pad)
  return `,${eol}${pad}${JSON.stringify(key)}: ${body}`
}

/** Adds the envelope as the last entry of a Secret's mapping. */
export function insertEnvelopeEdit(text: string, map: YAMLMap, env: Record<string, unknown>, key: string, eol: string): Edit {
  const last = map.items[map.items.length - 1] as Pair
  const lastEnd = ((last.value ?? last.key) as Scalar).range![1]
  if (map.flow) return {start: lastEnd, end: lastEnd, text: envelopeFlow(text, map, env, key, eol)}
  const pad = ' '.repeat(column(text, firstKeyPos(map)))
  const at = text[lastEnd - 1] === '\n' ? lastEnd : afterLine(text, lastEnd)
  const lead = at === text.length && !text.endsWith('\n') ? eol : ''
  return {start: at, end: at, text: lead + envelopeBlock(env, key, pad, eol)}
}

/** The source range of the envelope entry, including its line break (block) or leading comma (flow). */
function envelopeRange(text: string, map: YAMLMap, pair: Pair): [number, number] {
  const keyStart = (pair.key as Scalar).range![0]
  const valueEnd = ((pair.value ?? pair.key) as Scalar).range![1]
  if (map.flow) {
    const idx = map.items.indexOf(pair)
    if (idx > 0) {
      const prev = map.items[idx - 1] as Pair
      return [((prev.value ?? prev.key) as Scalar).range![1], valueEnd]
    }
    const comma = text.indexOf(',', valueEnd)
    return [keyStart, comma === -1 ? valueEnd : comma + 1]
  }
  const end = text[valueEnd - 1] === '\n' ? valueEnd : afterLine(text, valueEnd)
  return [lineStart(text, keyStart), end]
}

export function removeEnvelopeEdit(text: string, map: YAMLMap, pair: Pair): Edit {
  const [start, end] = envelopeRange(text, map, pair)
  return {start, end, text: ''}
}

/** Rewrites the envelope in place (same position, same style). */
export function replaceEnvelopeEdit(text: string, map: YAMLMap, pair: Pair, env: Record<string, unknown>, key: string, eol: string): Edit {
  const [start, end] = envelopeRange(text, map, pair)
  if (map.flow) {
    const lead = map.items.indexOf(pair) > 0
    const rendered = envelopeFlow(text, map, env, key, eol)
    return {start, end, text: lead ? rendered : rendered.slice(1).trimStart() + ','}
  }
  const pad = ' '.repeat(column(text, (pair.key as Scalar).range![0]))
  return {start, end, text: envelopeBlock(env, key, pad, eol)}
}
