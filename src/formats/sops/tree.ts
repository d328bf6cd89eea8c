/**
 * A SOPS file as sops walks it: documents parsed with the `yaml` package (every node keeps its
 * source range, so callers rewrite values in place and leave every other byte alone), and each
 * document's leaves in sops's order, each with its path and what sops's reader makes of it.
 *
 * Types follow sops's stores: the YAML store reads plain scalars as go-yaml v3 does (go.ts), the
 * JSON store reads every number as a float64. What sops cannot represent — aliases, merge keys,
 * tags, keys that are not strings, a document that is not a mapping — is refused with one line.
 */
import {
  Composer,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  Parser,
  type Scalar,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml'
import {KsealError, type Where} from '../../core/errors.js'
import {hasSopsBlock} from '../detect.js'
import {type GoScalar, resolvePlain} from './go.js'
import {METADATA_KEY} from './metadata.js'

export type Dialect = 'yaml' | 'json'

const MAX_DEPTH = 64
const MAX_KEY_LENGTH = 4096

export interface Leaf {
  /** The map keys from the document's root: what the rules judge and the AAD is made of. */
  path: string[]
  /** The same with list positions, for messages and for finding a value again after an edit. */
  loc: (string | number)[]
  node: Scalar
  /** True inside a flow collection (`{…}`, `[…]`, JSON), where a plain `ENC[…]` would not parse. */
  flow: boolean
  /** What sops reads the value as when it is left unencrypted. */
  plain: GoScalar
}

export interface Container {
  path: string[]
  node: YAMLMap | YAMLSeq
}

export interface CommentToken {
  offset: number
  /** The comment as written, `#` included. */
  source: string
}

export interface ParsedDoc {
  index: number
  where: Where
  doc: Document.Parsed
  /** The root mapping (null for an empty document). */
  map: YAMLMap | null
  /** The top-level `sops` entry, when the document has one. */
  metadataPair: Pair | null
  leaves: Leaf[]
  containers: Container[]
  comments: CommentToken[]
}

export interface ParsedStream {
  text: string
  dialect: Dialect
  eol: string
  docs: ParsedDoc[]
}

const PARSE_OPTIONS = {version: '1.2', schema: 'failsafe', uniqueKeys: true, prettyErrors: false} as const

export interface StreamOptions {
  /**
   * Read only the documents that carry a `sops` entry; every other document is left unread (no
   * leaves, no map), so a stream that mixes SOPS documents with others (kseal's, kubesec's, plain
   * ones that YAML 1.2 or sops could not read) passes those through as they are.
   */
  onlySops?: boolean
}

/** Parses a YAML stream or a JSON document into documents and their leaves, in sops's order. */
export function parseStream(text: string, dialect: Dialect, file?: string, opts: StreamOptions = {}): ParsedStream {
  if (text.includes('\u0000')) throw new KsealError('ERR_INPUT', 'not a text file (binary data)', {file})
  if (dialect === 'json') {
    try {
      JSON.parse(text)
    } catch (e) {
      throw new KsealError('ERR_INPUT', `malformed JSON: ${(e as Error).message}`, {file})
    }
  }
  const lineCounter = new LineCounter()
  const cst = [...new Parser(lineCounter.addNewLine).parse(text)]
  const comments: CommentToken[] = []
  collectComments(cst, comments)
  const docs: ParsedDoc[] = []
  const composed = [...new Composer(PARSE_OPTIONS).compose(cst)] as Document.Parsed[]
  composed.forEach((doc, index) => {
    const where: Where = {file, document: index + 1}
    // The documents partition the text: a comment belongs to the document it is written in.
    const start = index === 0 ? 0 : composed[index].range[0]
    const end = composed[index + 1]?.range[0] ?? text.length
    if (opts.onlySops && !hasSopsEntry(doc, text.slice(start, end))) {
      docs.push({index, where, doc, map: null, metadataPair: null, leaves: [], containers: [], comments: []})
      return
    }
    if (doc.errors.length) {
      const err = doc.errors[0]
      const pos = lineCounter.linePos(err.pos[0])
      throw new KsealError(
        'ERR_INPUT',
        `malformed YAML at line ${pos.line}, column ${pos.col}: ${err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
        where,
      )
    }
    docs.push(
      walkDocument(
        doc,
        index,
        where,
        dialect,
        comments.filter((c) => c.offset >= start && c.offset < end),
      ),
    )
  })
  return {text, dialect, eol: text.includes('\r\n') ? '\r\n' : '\n', docs}
}

/** Whether a document has a top-level `sops` entry (one YAML 1.2 could not read counts when its text has a `sops:` line). */
function hasSopsEntry(doc: Document.Parsed, text: string): boolean {
  if (doc.errors.length) return hasSopsBlock(text)
  const root = doc.contents
  return isMap(root) && root.items.some((p) => isScalar(p.key) && p.key.value === METADATA_KEY)
}

function collectComments(x: unknown, out: CommentToken[]): void {
  if (Array.isArray(x)) {
    for (const v of x) collectComments(v, out)
    return
  }
  if (!x || typeof x !== 'object') return
  const t = x as {type?: string; offset?: number; source?: string}
  if (t.type === 'comment' && typeof t.offset === 'number' && typeof t.source === 'string') {
    out.push({offset: t.offset, source: t.source})
    return
  }
  for (const v of Object.values(x)) collectComments(v, out)
}

function walkDocument(doc: Document.Parsed, index: number, where: Where, dialect: Dialect, comments: CommentToken[]): ParsedDoc {
  const root = doc.contents as Node | null
  const out: ParsedDoc = {index, where, doc, map: null, metadataPair: null, leaves: [], containers: [], comments}
  if (root === null || (isScalar(root) && root.value === '' && root.type === 'PLAIN')) return out
  if (!isMap(root))
    throw new KsealError('ERR_INPUT', 'a SOPS document must be a mapping (sops cannot read a document that is a list or a value)', where)
  out.map = root
  const refuse = (msg: string, loc: (string | number)[]) =>
    new KsealError('ERR_INPUT', msg, {...where, key: loc.length ? loc.join('.') : undefined})

  const visit = (node: Node | null, path: string[], loc: (string | number)[], flow: boolean, depth: number): void => {
    if (depth > MAX_DEPTH) throw refuse(`nested deeper than ${MAX_DEPTH} levels`, loc)
    if (node === null) return // an entry with no value at all: a null, which sops skips
    if (isAlias(node))
      throw refuse('YAML aliases are not supported in SOPS files (sops expands them; kseal refuses rather than guess)', loc)
    if (node.tag !== undefined) throw refuse(`explicit YAML tags (${node.tag}) are not supported in SOPS files`, loc)
    if (isMap(node)) {
      out.containers.push({path, node})
      for (const pair of node.items) {
        const key = keyOf(pair, loc, dialect, refuse)
        if (depth === 0 && key === METADATA_KEY) {
          out.metadataPair = pair
          continue
        }
        visit(pair.value as Node | null, [...path, key], [...loc, key], flow || Boolean(node.flow), depth + 1)
      }
      return
    }
    if (isSeq(node)) {
      out.containers.push({path, node})
      node.items.forEach((item, i) => {
        if (dialect === 'json' && isSeq(item)) throw refuse('a JSON list inside a list cannot be read by sops', [...loc, i])
        visit(item as Node | null, path, [...loc, i], flow || Boolean(node.flow), depth + 1)
      })
      return
    }
    if (isScalar(node)) {
      out.leaves.push({path, loc, node, flow, plain: readScalar(node, dialect)})
      return
    }
    throw refuse('unexpected YAML node', loc)
  }
  visit(root, [], [], false, 0)
  return out
}

function keyOf(
  pair: Pair,
  loc: (string | number)[],
  dialect: Dialect,
  refuse: (msg: string, loc: (string | number)[]) => KsealError,
): string {
  const k = pair.key as Node | null
  if (!isScalar(k) || k.tag !== undefined || typeof k.value !== 'string') throw refuse('a mapping key that is not a plain string', loc)
  const key = k.value
  if (key.length > MAX_KEY_LENGTH) throw refuse(`a key longer than ${MAX_KEY_LENGTH} characters`, loc)
  if (k.type === 'PLAIN' && dialect === 'yaml') {
    if (key === '<<') throw refuse('YAML merge keys (<<) are not supported in SOPS files', loc)
    const r = resolvePlain(key)
    if (r.type !== 'str')
      throw refuse(`the key ${JSON.stringify(key)} reads as a ${r.type} in YAML 1.2, and sops needs string keys (quote it)`, [...loc, key])
  }
  return key
}

/** What sops's store reads an unencrypted scalar as. */
export function readScalar(node: Scalar, dialect: Dialect): GoScalar {
  const text = String(node.value)
  if (node.type !== 'PLAIN') return {type: 'str', value: text}
  if (dialect === 'json') {
    if (text === 'null') return {type: 'null'}
    if (text === 'true' || text === 'false') return {type: 'bool', value: text === 'true'}
    const f = Number(text)
    if (!Number.isFinite(f)) throw new KsealError('ERR_INPUT', `the JSON number ${text.slice(0, 40)} is out of range`)
    return {type: 'float', value: f}
  }
  return resolvePlain(text)
}
