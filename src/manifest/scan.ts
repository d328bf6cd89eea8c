/**
 * A fast reader for the manifests kseal meets most: streams of block-style documents (Secrets,
 * and other objects written the same plain way), as kubectl, kustomize and people write them. It
 * reads what parseManifests (parse.ts) reads for the parts kseal uses — where each document
 * starts, each Secret's identity, every data/stringData value with its style and source range, the
 * `kseal` envelope's lines and content — in a fraction of the time the `yaml` package takes, and it
 * gives up on everything else: the caller then uses the full parser.
 *
 * It gives up (`{ok: false, reason}`) on anything outside a small subset of YAML: flow collections,
 * anchors, aliases, tags, merge keys, directives, multi-line plain or quoted scalars, explicit
 * indentation indicators, empty or multi-line folded block scalars, JSON, Lists, tabs, CR, a
 * byte-order mark, any character kubectl's reader treats differently (kubeyaml.ts), duplicate
 * keys, content after `...`, and every shape of input on which parseManifests would throw — so an
 * error message always comes from the full parser. What it accepts, it reads exactly as
 * parseManifests does: test/scan.test.ts checks that over generated manifests, near misses
 * included, and every fixture.
 *
 * The subset: each document is empty or a block mapping at column 0; mappings and sequences nest
 * by indentation (a sequence may sit at its key's indentation, as kubectl writes it); scalars are
 * plain, single- or double-quoted on one line, or literal (`|`, `|-`, `|+`) and one-line folded
 * (`>`) blocks; comments are whole lines or follow a value after a space.
 */
import type {Where} from '../core/errors.js'
import {type Field, looksLikeToken} from '../envelope/envelope.js'
import {YAML_ESCAPES} from './edits.js'
import {kubeKey, kubeValue, resolvePlain} from './kubeyaml.js'
import {isCoreGroup, isCoreSecret} from './parse.js'

/** A scalar's style, spelled as the `yaml` package's Scalar.Type. */
export type ValueStyle = 'PLAIN' | 'QUOTE_DOUBLE' | 'QUOTE_SINGLE' | 'BLOCK_LITERAL' | 'BLOCK_FOLDED'

export interface ScannedValue {
  field: Field
  key: string
  /** The string value; null for a null value (`key:`, `key: null`, `key: ~`). */
  value: string | null
  /** True when the value is a kseal token. */
  encrypted: boolean
  /** How the value is written: its style and source range [start, end) (the `yaml` node's range[0] and range[1]); null for a null value. */
  source: {type: ValueStyle; range: [number, number]} | null
}

export interface ScannedSecret {
  where: Where
  namespace: string
  name: string
  values: ScannedValue[]
  /**
   * The Secret's mapping: the offset of its first key (the column entries are written at), and the
   * offset at which a new last entry (an envelope) is inserted — after its last entry and any
   * comment lines that belong to that entry's value.
   */
  map: {firstKey: number; insertAt: number}
  /** The `kseal` entry: its lines [start, end) (from its line's start to after its last line break), and its content as plain data. */
  envelope: {range: [number, number]; raw: unknown} | null
}

export interface ScannedManifests {
  text: string
  /** The offset where each document starts (the `yaml` Document's range[0]). */
  documents: number[]
  secrets: ScannedSecret[]
  /** Always `\n`: text with a CR is declined. */
  eol: '\n'
}

export type ScanResult = {ok: true; manifests: ScannedManifests} | {ok: false; reason: string}

/**
 * Reads a stream of manifests, or declines. A declined text goes to parseManifests, which reads
 * it (or refuses it with a clear message); an accepted one reads the same as parseManifests would.
 */
export function scanManifests(text: string, file?: string): ScanResult {
  try {
    return {ok: true, manifests: new Scanner(text, file).scan()}
  } catch (e) {
    if (e instanceof Decline) return {ok: false, reason: e.reason}
    throw e
  }
}

class Decline {
  constructor(readonly reason: string) {}
}

function decline(reason: string): never {
  throw new Decline(reason)
}

/**
 * Characters the scanner never reads: controls (tab and CR among them), DEL, C1 controls (NEL
 * among them), LS, PS, a byte-order mark, U+FFFE, U+FFFF and lone surrogates. Some are refused by
 * kubectl or read differently by it (kubeyaml.ts checkKubeText); the others are left to the full
 * parser for simplicity.
 */
const UNREAD = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|\p{Cs}/u

const FIELDS: Field[] = ['data', 'stringData']
const ENVELOPE_KEY = 'kseal'
/** A v1 Secret's top-level fields, and kseal's envelope. */
const SECRET_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'type', 'immutable', ...FIELDS, ENVELOPE_KEY])

/** Line kinds. */
const BLANK = 0
const COMMENT = 1
const CONTENT = 2

/** A plain mapping key: no indicator first (but `-` before a letter, digit or `_./`), no space, colon, `#`, quote or flow character in it. */
const PLAIN_KEY = /(?:[A-Za-z0-9_./]|-[A-Za-z0-9_./])[A-Za-z0-9_./~+-]*/y
/** Implicit keys are at most 1024 characters in YAML; well below that. */
const MAX_KEY = 1000
/** Characters that start something other than a plain scalar (YAML's indicators, and `-` for simplicity). */
const INDICATOR = /[-?:,[\]{}#&*!|>'"%@`]/
const BLOCK_HEADER = /^([|>])([-+]?)(?: +#.*| *)$/
const EMPTY_FLOW = /^(?:\{\}|\[\])(?: +#.*| *)$/
const DOC_START = /^---(?: +(?:#.*)?)?$/
const DOC_END = /^\.\.\.(?: +(?:#.*)?)?$/

interface ScalarNode {
  kind: 'scalar'
  style: ValueStyle
  /** Plain text as written (resolved on demand), or the string a quoted or block scalar holds. */
  text: string
  /** yaml's range: start, end of the value, end of the node (trailing comment lines it owns). */
  start: number
  end: number
  end2: number
  /** A null written as nothing at all (`key:`). */
  empty?: boolean
}

interface MapNode {
  kind: 'map'
  entries: Entry[]
  start: number
  /** yaml's range[1]: where its last entry's node ends (block), or after its `}` (flow). */
  end: number
  /** A flow collection's range[2], as a scalar's. */
  end2?: number
}

interface SeqNode {
  kind: 'seq'
  items: Node[]
  start: number
  end: number
  end2?: number
}

type Node = ScalarNode | MapNode | SeqNode

interface Entry {
  key: string
  /** The key as written, when plain. */
  plain: string | undefined
  keyStart: number
  value: Node
}

/** Where a node ends, as its parent's range sees it. */
const endOf = (n: Node) => n.end2 ?? n.end

/** The JSON value kubectl (and the yaml package, under KUBE_YAML) makes of a scalar. */
function scalarValue(n: ScalarNode): string | number | boolean | null {
  if (n.empty) return null
  return n.style === 'PLAIN' ? kubeValue(n.text) : n.text
}

/** What `yaml`'s toJSON() makes of a node. */
function toJS(n: Node): unknown {
  if (n.kind === 'scalar') return scalarValue(n)
  if (n.kind === 'seq') return n.items.map(toJS)
  const o: Record<string, unknown> = {}
  for (const e of n.entries) o[e.key] = toJS(e.value)
  return o
}

const get = (m: MapNode, key: string) => m.entries.find((e) => e.key === key)

function getString(m: MapNode, key: string): string | undefined {
  const v = get(m, key)?.value
  if (v?.kind !== 'scalar') return undefined
  const x = scalarValue(v)
  return typeof x === 'string' ? x : undefined
}

class Scanner {
  private readonly lines: string[]
  private readonly starts: number[]
  private readonly indents: Int32Array
  private readonly kinds: Uint8Array
  /** The line the current document's content ends before (a marker, or the end). */
  private limit = 0

  constructor(
    private readonly text: string,
    private readonly file: string | undefined,
  ) {
    if (UNREAD.test(text)) decline('a character the scanner leaves to the full parser')
    if (file !== undefined && /\.json$/i.test(file)) decline('JSON')
    this.lines = text.split('\n')
    // Every line ends with a line break, but perhaps the last.
    if (text.endsWith('\n')) this.lines.pop()
    const n = this.lines.length
    this.starts = new Array<number>(n)
    this.indents = new Int32Array(n)
    this.kinds = new Uint8Array(n)
    let at = 0
    for (let i = 0; i < n; i++) {
      const line = this.lines[i]
      this.starts[i] = at
      at += line.length + 1
      let s = 0
      while (line.charCodeAt(s) === 32) s++
      this.indents[i] = s
      this.kinds[i] = s === line.length ? BLANK : line.charCodeAt(s) === 35 /* # */ ? COMMENT : CONTENT
    }
  }

  scan(): ScannedManifests {
    const {lines, kinds, text} = this
    const documents: number[] = []
    const secrets: ScannedSecret[] = []
    let i = 0
    while (i < lines.length) {
      // One chunk: an optional `---` line, then lines up to the next `---` line (as kubectl splits).
      const explicit = lines[i].startsWith('---')
      if (explicit) {
        if (!DOC_START.test(lines[i])) decline('a document marker with content after it')
        i++
      }
      let end = i
      let docEnd = -1
      while (end < lines.length && !lines[end].startsWith('---')) {
        const line = lines[end]
        if (line.startsWith('...')) {
          if (!DOC_END.test(line)) decline('text after a document end marker')
          if (docEnd >= 0) decline('two document end markers')
          docEnd = end
        } else if (line.startsWith('%')) {
          decline('a directive')
        } else if (docEnd >= 0 && kinds[end] === CONTENT) {
          decline('content after a document end marker')
        }
        end++
      }
      this.limit = docEnd >= 0 ? docEnd : end
      let c = i
      while (c < this.limit && kinds[c] !== CONTENT) c++
      // A document: a `---` line, content, or a `...` line (which ends an empty one). It starts at the first of them.
      if (explicit || c < this.limit || docEnd >= 0) {
        documents.push(explicit ? this.starts[i - 1] : this.starts[c < this.limit ? c : docEnd])
        if (c < this.limit) this.document(c, documents.length, secrets)
      }
      i = end
    }
    return {text, documents, secrets, eol: '\n'}
  }

  /** One document's content, from its first content line. */
  private document(i: number, index: number, out: ScannedSecret[]): void {
    if (this.indents[i] !== 0) decline('an indented document')
    const c = this.lines[i][0]
    if (c === '{' || c === '[') decline('JSON or a flow collection')
    if (this.isDash(i, 0)) decline('a document that is a sequence')
    const [root, next] = this.map(i, 0, 0)
    if (this.nextContent(next) < this.limit) decline("content after the document's mapping")
    this.collect(root, {file: this.file, document: index}, out)
  }

  /** What parse.ts collect() does with a document's mapping, or a decline where it would throw or look into a List. */
  private collect(root: MapNode, where: Where, out: ScannedSecret[]): void {
    const kind = getString(root, 'kind')
    const apiVersion = getString(root, 'apiVersion')
    if (kind === 'Secret' && isCoreGroup(apiVersion)) {
      if (!isCoreSecret(kind, apiVersion)) decline('a Secret with another apiVersion')
      out.push(this.secret(root, where))
      return
    }
    const items = get(root, 'items')
    if (kind !== undefined && kind.endsWith('List') && items?.value.kind === 'seq') decline('a List')
    if ((kind === undefined || apiVersion === undefined) && FIELDS.some((f) => get(root, f))) decline('data without kind or apiVersion')
  }

  private secret(root: MapNode, where: Where): ScannedSecret {
    // A scanned Secret hands on no mapping to walk (read.ts): one with a key beyond a Secret's own
    // fields (another tool's block, `sops:` say, that a caller looks for) goes to the full parser.
    if (root.entries.some((e) => !SECRET_FIELDS.has(e.key))) decline('a key that is not a Secret field')
    const meta = get(root, 'metadata')?.value
    const name = (meta?.kind === 'map' && getString(meta, 'name')) || ''
    const namespace = (meta?.kind === 'map' && getString(meta, 'namespace')) || ''
    const w: Where = {...where, secret: (namespace ? `${namespace}/` : '') + (name || '(unnamed)')}
    const values: ScannedValue[] = []
    for (const field of FIELDS) {
      const v = get(root, field)?.value
      if (!v || (v.kind === 'scalar' && scalarValue(v) === null)) continue
      if (v.kind !== 'map') decline(`${field} that is not a mapping`)
      for (const e of v.entries) {
        if (e.plain !== undefined && e.plain !== e.key) decline('a key Kubernetes reads differently')
        const n = e.value
        if (n.kind !== 'scalar') decline('a value that is not a string')
        const x = scalarValue(n)
        if (x === null) {
          values.push({field, key: e.key, value: null, encrypted: false, source: null})
          continue
        }
        if (typeof x !== 'string') decline('a value that is not a string')
        values.push({field, key: e.key, value: x, encrypted: looksLikeToken(x), source: {type: n.style, range: [n.start, n.end]}})
      }
    }
    const last = root.entries[root.entries.length - 1]
    const env = get(root, ENVELOPE_KEY)
    return {
      where: w,
      namespace,
      name,
      values,
      // As edits.ts places and removes an entry: from a line's start to after the line break that ends its node's range[1].
      map: {firstKey: root.entries[0].keyStart, insertAt: this.afterEnd(last.value.end)},
      envelope: env ? {range: [this.lineStartOf(env.keyStart), this.afterEnd(env.value.end)], raw: toJS(env.value)} : null,
    }
  }

  /** An offset that ends a range, moved past the rest of its line unless a line break just ended. */
  private afterEnd(end: number): number {
    if (this.text[end - 1] === '\n') return end
    const nl = this.text.indexOf('\n', end)
    return nl === -1 ? this.text.length : nl + 1
  }

  private lineStartOf(pos: number): number {
    return this.text.lastIndexOf('\n', pos - 1) + 1
  }

  /** The first line at or after i that holds content (not blank, not a comment), or the limit. */
  private nextContent(i: number): number {
    while (i < this.limit && this.kinds[i] !== CONTENT) i++
    return i
  }

  /** Whether line i holds a sequence entry (`- ` or `-` alone) at column col. */
  private isDash(i: number, col: number): boolean {
    const line = this.lines[i]
    return line.charCodeAt(col) === 45 /* - */ && (line.length === col + 1 || line.charCodeAt(col + 1) === 32)
  }

  /** The offset after line i's line break (or the end of the text). */
  private lineEnd(i: number): number {
    return Math.min(this.starts[i] + this.lines[i].length + 1, this.text.length)
  }

  /**
   * yaml's range[2] for a scalar on line i in a collection at indentation n: the rest of its line
   * and the comment lines after it that are indented deeper than n.
   */
  private ownedEnd(i: number, n: number): number {
    let end = this.lineEnd(i)
    for (let j = i + 1; j < this.limit && this.kinds[j] !== CONTENT; j++) {
      if (this.kinds[j] === COMMENT) {
        if (this.indents[j] <= n) break
        end = this.lineEnd(j)
      }
    }
    return end
  }

  /** A block mapping at indentation n whose first key is on line i at column col (n, or after `- `). */
  private map(i: number, n: number, col: number): [MapNode, number] {
    const entries: Entry[] = []
    const keys = new Set<string>()
    let j = i
    let at = col
    for (;;) {
      const line = this.lines[j]
      const {key, plain, after} = this.key(line, at)
      if (keys.has(key)) decline('a duplicate key')
      keys.add(key)
      const [value, next] = this.value(j, after, n, true)
      entries.push({key, plain, keyStart: this.starts[j] + at, value})
      j = this.nextContent(next)
      if (j >= this.limit || this.indents[j] < n) break
      if (this.indents[j] > n) decline('unexpected indentation')
      if (this.isDash(j, n)) decline('a sequence entry in a mapping')
      at = n
    }
    return [{kind: 'map', entries, start: this.starts[i] + col, end: endOf(entries[entries.length - 1].value)}, j]
  }

  /** A block sequence at indentation n, from line i. */
  private seq(i: number, n: number): [SeqNode, number] {
    const items: Node[] = []
    let j = i
    for (;;) {
      const line = this.lines[j]
      let c = n + 1
      while (line.charCodeAt(c) === 32) c++
      let item: Node
      let next: number
      if (c < line.length && line[c] !== '#' && this.looksLikeKey(line, c)) {
        if (c !== n + 2) decline('a mapping in a sequence entry not indented by two')
        ;[item, next] = this.map(j, c, c)
      } else {
        if (this.isDash(j, c)) decline('a sequence in a sequence entry')
        ;[item, next] = this.value(j, n + 1, n, false)
      }
      items.push(item)
      j = this.nextContent(next)
      if (j >= this.limit || this.indents[j] < n) break
      if (this.indents[j] > n) decline('unexpected indentation')
      if (!this.isDash(j, n)) break // a key at the indentation of a sequence that is a key's value
    }
    return [{kind: 'seq', items, start: this.starts[i] + n, end: endOf(items[items.length - 1])}, j]
  }

  private looksLikeKey(line: string, c: number): boolean {
    const ch = line[c]
    if (ch === '"' || ch === "'") {
      const close = quotedEnd(line, c)
      return close > 0 && line[close] === ':'
    }
    PLAIN_KEY.lastIndex = c
    const m = PLAIN_KEY.exec(line)
    if (m) {
      const e = c + m[0].length
      return line[e] === ':' && (e + 1 === line.length || line[e + 1] === ' ')
    }
    // Something else followed by `: `: a key the scanner does not read.
    const colon = line.indexOf(': ', c)
    if (colon >= 0 || line.endsWith(':')) decline('a mapping key the scanner does not read')
    return false
  }

  /** The mapping key at column c of a line: its string, its plain spelling, and the column after its colon. */
  private key(line: string, c: number): {key: string; plain: string | undefined; after: number} {
    const ch = line[c]
    let key: string
    let plain: string | undefined
    let e: number
    if (ch === '"' || ch === "'") {
      e = quotedEnd(line, c)
      if (e < 0) decline('an unterminated quoted key')
      key = unquote(line, c, e)
    } else {
      PLAIN_KEY.lastIndex = c
      const m = PLAIN_KEY.exec(line)
      if (!m) decline('a mapping key the scanner does not read')
      e = c + m[0].length
      plain = m[0]
      const r = resolvePlain(plain).type
      if (r === 'merge') decline('a merge key')
      const k = r === 'string' ? plain : kubeKey(plain)
      if (k === null) decline('a mapping key Kubernetes refuses')
      key = k
    }
    if (line[e] !== ':' || (e + 1 < line.length && line[e + 1] !== ' ')) decline('a mapping key the scanner does not read')
    if (e - c > MAX_KEY) decline('a long key')
    if (key === '__proto__') decline('a __proto__ key')
    return {key, plain, after: e + 1}
  }

  /**
   * The value that starts at column col of line i (after `key:` or `-`), owned by a collection at
   * indentation n; `inMap` when it is a mapping's value (its sequence may sit at n). Returns the
   * node and the line after it.
   */
  private value(i: number, col: number, n: number, inMap: boolean): [Node, number] {
    const line = this.lines[i]
    let c = col
    while (line.charCodeAt(c) === 32) c++
    const base = this.starts[i]
    if (c === line.length || line[c] === '#') {
      // Nothing on this line: a block collection on the next ones, or null.
      const j = this.nextContent(i + 1)
      if (j < this.limit) {
        const m = this.indents[j]
        if (m > n) {
          if (this.isDash(j, m)) return this.seq(j, m)
          if (this.looksLikeKey(this.lines[j], m)) return this.map(j, m, m)
          decline('a scalar on the line after its key')
        }
        if (inMap && m === n && this.isDash(j, n)) return this.seq(j, n)
      }
      // yaml's range for nothing at all: it ends where it starts; but when a comment follows (on
      // its line, or on the lines before the next content, at any indentation), after all those lines.
      const pos = base + c
      let k = i + 1
      let comment = c < line.length
      for (; k < this.limit && this.kinds[k] !== CONTENT; k++) if (this.kinds[k] === COMMENT) comment = true
      const end2 = comment ? this.lineEnd(k - 1) : pos
      return [{kind: 'scalar', style: 'PLAIN', text: '', start: pos, end: pos, end2, empty: true}, i + 1]
    }
    const ch = line[c]
    if (ch === '|' || ch === '>') return this.block(i, c, n)
    if (ch === '{' || ch === '[') return this.emptyFlow(i, c, n)
    let text: string
    let style: ValueStyle
    let end: number
    if (ch === '"' || ch === "'") {
      end = quotedEnd(line, c)
      if (end < 0) decline('a quoted scalar that does not end on its line')
      text = unquote(line, c, end)
      style = ch === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE'
      let k = end
      while (line.charCodeAt(k) === 32) k++
      if (k < line.length && !(line[k] === '#' && k > end)) decline('text after a quoted scalar')
    } else {
      if (INDICATOR.test(ch) && !(ch === '-' && /[A-Za-z0-9_./]/.test(line[c + 1] ?? ''))) decline('a value that starts with an indicator')
      const hash = line.indexOf(' #', c)
      end = hash < 0 ? line.length : hash
      while (line.charCodeAt(end - 1) === 32) end--
      text = line.slice(c, end)
      if (text.includes(': ') || text.endsWith(':')) decline('a colon in a plain scalar')
      if (text === '<<') decline('a merge key as a value') // the one spelling resolvePlain reads as the merge key
      style = 'PLAIN'
    }
    // A value on one line: what follows must not be indented deeper (a continuation line).
    const j = this.nextContent(i + 1)
    if (j < this.limit && this.indents[j] > n) decline('a scalar that continues on the next line')
    return [{kind: 'scalar', style, text, start: base + c, end: base + end, end2: this.ownedEnd(i, n)}, i + 1]
  }

  /** `{}` or `[]`, the only flow collections the scanner reads (kubectl writes `annotations: {}`). */
  private emptyFlow(i: number, c: number, n: number): [Node, number] {
    const line = this.lines[i]
    const m = EMPTY_FLOW.exec(line.slice(c))
    if (!m || line[c + 1] !== (line[c] === '{' ? '}' : ']')) decline('a flow collection')
    const j = this.nextContent(i + 1)
    if (j < this.limit && this.indents[j] > n) decline('text indented under a flow collection')
    const start = this.starts[i] + c
    // Like a scalar, it owns the rest of its line and deeper comment lines after it.
    const range = {start, end: start + 2, end2: this.ownedEnd(i, n)}
    return [line[c] === '{' ? {kind: 'map', entries: [], ...range} : {kind: 'seq', items: [], ...range}, i + 1]
  }

  /**
   * A block scalar whose header is at column c of line i, owned by a collection at indentation n:
   * literal, or folded without more-indented lines (where folding keeps line breaks).
   */
  private block(i: number, c: number, n: number): [ScalarNode, number] {
    const header = BLOCK_HEADER.exec(this.lines[i].slice(c))
    if (!header) decline('a block scalar header the scanner does not read')
    const folded = header[1] === '>'
    const chomp = header[2]
    // The content: lines indented at least as deep as the first non-blank one, which sets the indentation.
    let j = i + 1
    while (j < this.limit && this.kinds[j] === BLANK) j++
    const start = this.starts[i] + c
    if (j >= this.limit || this.indents[j] <= n) {
      // No content: the header and the blank lines after it (kept) or the first of them (as yaml ranges it).
      for (let k = i + 1; k < j; k++) if (this.lines[k].length > 0) decline('spaces in an empty block scalar')
      const endLine = chomp === '+' ? j - 1 : Math.min(i + 1, j - 1)
      if (endLine === this.lines.length - 1 && !this.text.endsWith('\n')) decline('a block scalar at the end of text without a line break')
      const end = this.lineEnd(endLine)
      return [
        {
          kind: 'scalar',
          style: folded ? 'BLOCK_FOLDED' : 'BLOCK_LITERAL',
          text: chomp === '+' ? '\n'.repeat(j - i - 1) : '',
          start,
          end,
          end2: end,
        },
        endLine + 1,
      ]
    }
    const m = this.indents[j]
    for (let k = i + 1; k < j; k++) if (this.lines[k].length > m) decline("a blank line deeper than the block scalar's content")
    if (folded && j > i + 1) decline('a folded block scalar with leading blank lines')
    let last = j // the last line with content
    let k = j + 1
    for (; k < this.limit; k++) {
      const line = this.lines[k]
      if (this.kinds[k] === BLANK) {
        if (line.length > m) decline("spaces beyond a block scalar's indentation on a blank line")
        continue
      }
      if (this.indents[k] < m) break
      if (folded && this.indents[k] > m) decline('a more-indented line in a folded block scalar')
      last = k
    }
    // k: the first line after the block's lines; lines last+1..k-1 are blank. What follows at
    // indentation between the key's and the content's can only be a comment.
    const after = this.nextContent(k)
    if (after < this.limit && this.indents[after] > n) decline('text indented between a block scalar and its key')
    const endLine = chomp === '+' ? k - 1 : last
    if (endLine === this.lines.length - 1 && !this.text.endsWith('\n')) decline('a block scalar at the end of text without a line break')
    let text = ''
    let breaks = -1
    for (let x = i + 1; x <= last; x++) {
      const line = this.lines[x].slice(m)
      if (!folded) {
        text += (x > i + 1 ? '\n' : '') + line
      } else if (line === '') {
        breaks++
      } else {
        // Folding: one line break between lines is a space; each blank line between them is a line break.
        text += (breaks < 0 ? '' : breaks === 0 ? ' ' : '\n'.repeat(breaks)) + line
        breaks = 0
      }
    }
    if (chomp === '+') text += '\n'.repeat(k - last)
    else if (chomp === '') text += '\n'
    const end = this.lineEnd(endLine)
    return [{kind: 'scalar', style: folded ? 'BLOCK_FOLDED' : 'BLOCK_LITERAL', text, start, end, end2: end}, endLine + 1]
  }
}

/** The column after the closing quote of the quoted scalar that opens at column c of the line, or -1. */
function quotedEnd(line: string, c: number): number {
  return line[c] === '"' ? doubleQuotedEnd(line, c) : singleQuotedEnd(line, c)
}

/** The string the quoted scalar at columns [c, end) of a line stands for. */
function unquote(line: string, c: number, end: number): string {
  const inside = line.slice(c + 1, end - 1)
  return line[c] === '"' ? decodeDouble(inside) : inside.replace(/''/g, "'")
}

/** The column after a double-quoted scalar's closing quote on the line, or -1. */
function doubleQuotedEnd(line: string, c: number): number {
  for (let k = c + 1; k < line.length; k++) {
    const ch = line.charCodeAt(k)
    if (ch === 92 /* \ */) k++
    else if (ch === 34 /* " */) return k + 1
  }
  return -1
}

/** The column after a single-quoted scalar's closing quote on the line, or -1. */
function singleQuotedEnd(line: string, c: number): number {
  for (let k = c + 1; k < line.length; k++) {
    if (line.charCodeAt(k) === 39 /* ' */) {
      if (line.charCodeAt(k + 1) === 39) k++
      else return k + 1
    }
  }
  return -1
}

/** The short escapes kseal writes (edits.ts doubleQuoted), which every YAML reader reads alike: `n` → line feed. */
const ESCAPES: Record<string, string> = Object.fromEntries(Object.entries(YAML_ESCAPES).map(([c, e]) => [e.slice(1), c]))

/** The string a double-quoted scalar's inside (one line) stands for. */
function decodeDouble(s: string): string {
  if (!s.includes('\\')) return s
  return s.replace(/\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|.?)/g, (_, e: string) => {
    if (e.length > 1) {
      const code = parseInt(e.slice(1), 16)
      if (code >= 0xd800 && code <= 0xdfff) decline('a surrogate escape')
      return String.fromCharCode(code)
    }
    return ESCAPES[e] ?? decline('an escape the scanner does not read')
  })
}
