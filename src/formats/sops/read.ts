/**
 * Reading SOPS files: find the documents that carry a `sops` block, open their data key, decrypt
 * every `ENC[…]` value at its path, and verify the MAC — always. A file sops wrote with several
 * YAML documents shares one `sops` block and one MAC across them; documents concatenated from
 * separate files (a `kustomize build` stream) each carry their own. Documents are grouped by
 * identical `sops` blocks and each group is verified as sops would verify that file; a group whose
 * joint MAC fails is accepted only if every one of its documents verifies on its own.
 *
 * Every value keeps its source range, so `decryptedText` writes the plaintext back into the
 * original bytes (layout and comments kept, the `sops` blocks removed), and a later edit can be
 * re-encrypted keeping the ciphertext of the values that did not change (write.ts).
 */
import {isMap, isScalar, type Node, type Pair, type Scalar, type YAMLMap} from 'yaml'
import {applyEdits, type Edit, removeEnvelopeEdit} from '../../manifest/edits.js'
import {KsealError, type Where} from '../../core/errors.js'
import {decryptEnc, looksEncrypted, parseEnc, pathAad, type TypedValue, typedValue, utf8} from './cipher.js'
import {goBytes} from './go.js'
import type {SopsMasterKeys} from './masterkeys.js'
import {MacHash, macMatches} from './mac.js'
import {entryName, parseMetadata, plainData, type SopsMetadata} from './metadata.js'
import {valueEditFor} from './render.js'
export {looksLikeSops} from '../detect.js'
import {compileRules, type Rules} from './rules.js'
import {type Container, type Dialect, type Leaf, type ParsedDoc, type ParsedStream, parseStream} from './tree.js'

export interface SopsGroup {
  /** Indexes of the documents that share this `sops` block (and one MAC). */
  documents: number[]
  metadata: SopsMetadata
}

/** A SOPS file as read, before any key is used: enough to list its recipients and settings. */
export interface SopsFile {
  file?: string
  stream: ParsedStream
  groups: SopsGroup[]
}

export interface SopsValue {
  /** Index of its document in the file. */
  document: number
  /** The map keys to it (the AAD path). */
  path: string[]
  /** The same with list positions. */
  loc: (string | number)[]
  node: Scalar
  /** True inside a flow collection (or JSON). */
  flow: boolean
  /** True when the file holds it encrypted. */
  encrypted: boolean
  /** Decrypted (or, when not encrypted, as sops reads it), with its type; null for a null. */
  value: TypedValue | null
  /** The `ENC[…]` text, for encrypted values. */
  ciphertext?: string
}

export interface SopsComment {
  document: number
  /** The comment's source range, `#` included. */
  range: [number, number]
  /** The decrypted text, after the `#`. */
  text: string
}

export interface OpenedGroup extends SopsGroup {
  /** The 32-byte data key. Keep it in memory only. */
  dataKey: Buffer
  values: SopsValue[]
  comments: SopsComment[]
}

export interface OpenedSops {
  sops: SopsFile
  groups: OpenedGroup[]
}

/**
 * Which of sops's stores wrote this text: JSON (by extension, or a document that is strict JSON),
 * else YAML. sops's dotenv and INI files are not Kubernetes manifests and are refused.
 */
export function sopsDialect(text: string, file?: string): Dialect {
  if (/^sops_(mac|version|lastmodified)=/m.test(text))
    throw new KsealError('ERR_INPUT', 'a SOPS dotenv file is not a Kubernetes manifest; kseal reads SOPS YAML and JSON files', {file})
  if (/^\[sops\][ \t]*\r?$/m.test(text))
    throw new KsealError('ERR_INPUT', 'a SOPS INI file is not a Kubernetes manifest; kseal reads SOPS YAML and JSON files', {file})
  if (file && /\.json$/i.test(file)) return 'json'
  if (file && /\.ya?ml$/i.test(file)) return 'yaml'
  if (/^\s*\{/.test(text)) {
    try {
      JSON.parse(text)
      return 'json'
    } catch {
      // YAML that starts with a flow mapping
    }
  }
  return 'yaml'
}

/** Parses a SOPS file (YAML stream or JSON) and its `sops` blocks. Documents without one are left as they are. */
export function parseSops(text: string, opts: {file?: string; dialect?: Dialect} = {}): SopsFile {
  const dialect = opts.dialect ?? sopsDialect(text, opts.file)
  const stream = parseStream(text, dialect, opts.file, {onlySops: true})
  const byBlock = new Map<string, SopsGroup>()
  for (const d of stream.docs) {
    if (!d.metadataPair) continue
    try {
      const id = JSON.stringify(plainData(d.metadataPair.value))
      let g = byBlock.get(id)
      if (!g) {
        g = {documents: [], metadata: parseMetadata(d.metadataPair.value as Node | null)}
        compileRules(g.metadata.rules) // refused here, with the document named, when malformed
        byBlock.set(id, g)
      }
      g.documents.push(d.index)
    } catch (e) {
      throw at(e, where(d))
    }
  }
  return {file: opts.file, stream, groups: [...byBlock.values()]}
}

/**
 * Opens every group: its data key, every value, the MAC. The groups' keys are opened at once (KMS
 * calls and gpg runs overlap, within their backends' caps); the first failure in document order is
 * thrown, naming where.
 */
export async function openSops(sops: SopsFile, keys: SopsMasterKeys): Promise<OpenedSops> {
  const results = await Promise.allSettled(sops.groups.map((g) => openGroup(sops, g, keys)))
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  return {sops, groups: results.map((r) => (r as PromiseFulfilledResult<OpenedGroup>).value)}
}

async function openGroup(sops: SopsFile, g: SopsGroup, keys: SopsMasterKeys): Promise<OpenedGroup> {
  const docs = g.documents.map((i) => sops.stream.docs[i])
  let dataKey: Buffer
  try {
    dataKey = await keys.open(g.metadata.keyGroups)
  } catch (e) {
    throw at(e, where(docs[0]))
  }
  const rules = compileRules(g.metadata.rules)
  const all = new MacHash(g.metadata.macOnlyEncrypted)
  const values: SopsValue[] = []
  const comments: SopsComment[] = []
  const alone: boolean[] = []
  for (const d of docs) {
    const own = new MacHash(g.metadata.macOnlyEncrypted)
    for (const leaf of d.leaves) {
      let v: SopsValue
      try {
        v = openLeaf(d, leaf, rules, dataKey)
      } catch (e) {
        throw at(e, {...where(d), key: leaf.loc.join('.')})
      }
      if (v.value !== null) {
        const bytes = goBytes(v.value)
        all.add(bytes, v.encrypted)
        own.add(bytes, v.encrypted)
      }
      values.push(v)
    }
    comments.push(...openComments(d, rules, dataKey))
    alone.push(macMatches(dataKey, g.metadata.mac, g.metadata.macAad, own.hex()))
  }
  const joint = macMatches(dataKey, g.metadata.mac, g.metadata.macAad, all.hex())
  if (!joint && !(docs.length > 1 && alone.every(Boolean))) {
    const first = alone.indexOf(false)
    throw new KsealError(
      'ERR_INTEGRITY',
      'SOPS MAC mismatch: the file was altered after it was encrypted (a value, its order, lastmodified or the MAC was changed, or a value added or removed)',
      where(docs[Math.max(first, 0)]),
    )
  }
  return {...g, dataKey, values, comments}
}

function openLeaf(d: ParsedDoc, leaf: Leaf, rules: Rules, dataKey: Buffer): SopsValue {
  const base = {document: d.index, path: leaf.path, loc: leaf.loc, node: leaf.node, flow: leaf.flow}
  const plain = leaf.plain
  if (plain.type === 'uint') throw new KsealError('ERR_INPUT', 'an integer beyond 64 bits, which sops cannot hash (not a file sops wrote)')
  if (!rules.encrypted(leaf.path) || plain.type === 'null' || (plain.type === 'str' && plain.value === '')) {
    return {...base, encrypted: false, value: plain.type === 'null' ? null : plain}
  }
  if (plain.type !== 'str')
    throw new KsealError('ERR_INTEGRITY', `the file's rules say this value is encrypted, but it is a plain ${plain.type}`)
  // A block scalar holding the value ends with a line break, which sops's (unanchored) parse ignores.
  const token = leaf.node.type === 'BLOCK_LITERAL' || leaf.node.type === 'BLOCK_FOLDED' ? plain.value.replace(/\n+$/, '') : plain.value
  const enc = parseEnc(token)
  if (!enc || enc.type === 'comment') {
    throw new KsealError(
      'ERR_INTEGRITY',
      looksEncrypted(plain.value) ? 'malformed SOPS encrypted value' : "the file's rules say this value is encrypted, but it is plaintext",
    )
  }
  const bytes = decryptEnc(dataKey, enc, pathAad(leaf.path))
  if (!bytes) throw new KsealError('ERR_INTEGRITY', 'cannot decrypt: the value was altered, or moved here from another key')
  return {...base, encrypted: true, value: typedValue(enc.type, bytes), ciphertext: token}
}

/**
 * Encrypted comments (`#ENC[…,type:comment]`). sops encrypts a comment under the path of the map
 * or list it belongs to; which one, go-yaml decides by layout. Each comment is tried against the
 * paths of the collections around it (innermost first) whose comments the rules encrypt. Comments
 * are not in the MAC: one that opens under none stays as written, as sops leaves it.
 */
function openComments(d: ParsedDoc, rules: Rules, dataKey: Buffer): SopsComment[] {
  const out: SopsComment[] = []
  const meta = d.metadataPair ? pairRange(d.metadataPair) : null
  for (const c of d.comments) {
    if (meta && c.offset >= meta[0] && c.offset < meta[1]) continue
    const enc = parseEnc(c.source.slice(1))
    if (!enc || (enc.type !== 'comment' && enc.type !== 'str')) continue
    const around = (k: Container) => Boolean(k.node.range && k.node.range[0] <= c.offset && c.offset < k.node.range[2])
    const distance = (k: Container) => (k.node.range ? Math.abs(k.node.range[0] - c.offset) : Infinity)
    // The collections around it (innermost first), then the nearest others: a bounded number of
    // tries, found in one pass, so a file of many comments and collections cannot make kseal spin.
    const eligible = d.containers.filter((k) => rules.encrypted(k.path))
    const candidates = eligible
      .filter(around)
      .sort((a, b) => width(a.node.range) - width(b.node.range))
      .slice(0, MAX_COMMENT_TRIES)
    const room = MAX_COMMENT_TRIES - candidates.length
    const nearest: Container[] = []
    for (const k of room > 0 ? eligible : []) {
      if (around(k) || (nearest.length === room && distance(k) >= distance(nearest[room - 1]))) continue
      nearest.push(k)
      nearest.sort((a, b) => distance(a) - distance(b))
      nearest.length = Math.min(nearest.length, room)
    }
    candidates.push(...nearest)
    for (const k of candidates) {
      const plain = decryptEnc(dataKey, enc, pathAad(k.path))
      if (!plain) continue
      let t: string
      try {
        t = utf8(plain)
      } catch {
        break
      }
      if (!/[\r\n]/.test(t)) out.push({document: d.index, range: [c.offset, c.offset + c.source.length], text: t})
      break
    }
  }
  return out
}

/** AES-GCM tries per encrypted comment: a file of many comments and collections cannot make kseal spin. */
const MAX_COMMENT_TRIES = 8

const width = (r: [number, number, number] | null | undefined) => (r ? r[2] - r[0] : Infinity)

function pairRange(p: Pair): [number, number] {
  const k = p.key as Scalar
  const v = (p.value ?? p.key) as Scalar
  return [k.range![0], v.range![2]]
}

/**
 * The file's text with every encrypted value and comment decrypted and every `sops` block removed;
 * every other byte as it was.
 */
export function decryptedText(o: OpenedSops): string {
  const {text, eol, dialect, docs} = o.sops.stream
  const edits: Edit[] = []
  for (const g of o.groups) {
    for (const v of g.values) {
      if (v.encrypted && v.value !== null) edits.push(valueEditFor(text, v.node, v.value, eol, dialect, v.flow))
    }
    for (const c of g.comments) edits.push({start: c.range[0], end: c.range[1], text: '#' + c.text})
    for (const i of g.documents) {
      const d = docs[i]
      edits.push(removeEnvelopeEdit(text, d.map!, d.metadataPair!))
    }
  }
  return applyEdits(text, edits)
}

/** The key entries of each group, by name (`age:…`, `pgp:…`, `awskms:…`), for listings. */
export function recipientNames(sops: SopsFile): string[][] {
  return sops.groups.map((g) => g.metadata.keyGroups.flat().map(entryName))
}

/** A document's place for messages: file, document number and, for a Secret, its namespace/name. */
export function where(d: ParsedDoc): Where {
  const w: Where = {...d.where}
  const label = secretLabel(d.map)
  if (label) w.secret = label
  return w
}

function get(map: YAMLMap, key: string): unknown {
  return map.items.find((p) => isScalar(p.key) && p.key.value === key)?.value
}

function secretLabel(map: YAMLMap | null): string | undefined {
  if (!map) return undefined
  const kind = get(map, 'kind')
  if (!isScalar(kind) || kind.value !== 'Secret') return undefined
  const meta = get(map, 'metadata')
  const field = (k: string) => {
    const v = isMap(meta) ? get(meta, k) : undefined
    return isScalar(v) && typeof v.value === 'string' ? v.value : ''
  }
  return (field('namespace') ? field('namespace') + '/' : '') + (field('name') || '(unnamed)')
}

function at(e: unknown, w: Where): unknown {
  return typeof (e as KsealError)?.at === 'function' ? (e as KsealError).at(w) : e
}

/** What a SOPS document shows without any key: for `inspect` and `check`. */
export interface SopsDocInfo {
  /** Index of the document in the file. */
  document: number
  where: Where
  metadata: SopsMetadata
  /** Values the file holds encrypted (`ENC[…]` where the rules say so). */
  encrypted: number
  /**
   * A Secret's `data`/`stringData` values that are stored in plaintext (`field.key`): the file's
   * rules leave them out (an `encrypted_regex` that misses them), or they are not `ENC[…]`.
   * Empty strings and nulls, which sops never encrypts, are not counted.
   */
  plaintext: string[]
}

/** Each SOPS document's settings and what is encrypted in it, read without any key. */
export function describeSops(sops: SopsFile): SopsDocInfo[] {
  const out: SopsDocInfo[] = []
  for (const g of sops.groups) {
    const rules = compileRules(g.metadata.rules)
    for (const i of g.documents) {
      const d = sops.stream.docs[i]
      const w = where(d)
      let encrypted = 0
      const plaintext: string[] = []
      for (const leaf of d.leaves) {
        const v = leaf.plain
        const enc = rules.encrypted(leaf.path) && v.type === 'str' && parseEnc(v.value) !== null
        if (enc) encrypted++
        const secretValue = w.secret !== undefined && leaf.loc.length === 2 && (leaf.loc[0] === 'data' || leaf.loc[0] === 'stringData')
        if (secretValue && !enc && v.type !== 'null' && !(v.type === 'str' && v.value === '')) plaintext.push(leaf.loc.join('.'))
      }
      out.push({document: i, where: w, metadata: g.metadata, encrypted, plaintext})
    }
  }
  return out.sort((a, b) => a.document - b.document)
}
