/**
 * Writing SOPS files that sops (and Flux, KSOPS, helm-secrets) decrypts as its own: the values the
 * rules select replaced in place by `ENC[…]` (layout and comments kept), the MAC over every value
 * as sops's reader will see it, and a `sops` block appended to each document in the layout sops
 * 3.13 writes. A Secret gets `encrypted_regex: ^(data|stringData)$` and its own data key.
 *
 * Re-encrypting an edited plaintext keeps the ciphertext of every value that did not change: a
 * value at the same place (same keys and list positions) with the same type and bytes keeps its
 * `ENC[…]` — sound, because its IV was random and its AAD is its path, both unchanged — so a diff
 * shows exactly the values that changed. sops itself re-encrypts everything; the MAC, which covers
 * all values, is always recomputed.
 *
 * Comments are written as they are: unlike sops, kseal does not encrypt comments (sops reads a
 * plain comment where it expects an encrypted one, and leaves it as it is).
 */
import crypto from 'node:crypto'
import type {Scalar} from 'yaml'
import {type Edit, applyEdits, insertEnvelopeEdit, tokenEdit} from '../../manifest/edits.js'
import {KsealError} from '../../core/errors.js'
import {parseManifests, type SecretDoc} from '../../manifest/parse.js'
import {valueBytes} from '../../manifest/secrets.js'
import {encryptTyped, IV_BYTES, DATA_KEY_BYTES, parseEnc, pathAad, type TypedValue} from './cipher.js'
import {formatRfc3339, goBytes, rfc3339RoundTrip} from './go.js'
import type {SopsMasterKeys, SopsRecipient} from './masterkeys.js'
import {encryptMac, MacHash} from './mac.js'
import {type KeyEntry, METADATA_KEY, metadataObject, SOPS_WRITE_VERSION} from './metadata.js'
import {type OpenedSops, sopsDialect, where} from './read.js'
import {compileRules, type RuleSpec} from './rules.js'
import {type Dialect, type ParsedDoc, type ParsedStream, parseStream} from './tree.js'

/** What sops's `--encrypted-regex` is set to for Kubernetes Secrets (Flux's documented setting). */
export const SECRET_RULES: RuleSpec = {encryptedRegex: '^(data|stringData)$'}

/** The keys and settings of one SOPS group: everything needed to encrypt its documents. */
export interface SopsGroupKeys {
  dataKey: Buffer
  /** The data key wrapped for each recipient (one key group). */
  entries: KeyEntry[]
  rules: RuleSpec
  macOnlyEncrypted?: boolean
}

export interface SopsWriteOptions {
  /** The clock for `lastmodified` and `created_at` (injected for tests). */
  now?: () => Date
  /** Random bytes for IVs and data keys (injected for frozen vectors). */
  random?: (n: number) => Buffer
}

const defaultRandom = (n: number) => crypto.randomBytes(n)

/** A value's identity for ciphertext reuse: where it is, its type and its bytes. */
function reuseKey(loc: readonly (string | number)[], type: string, bytes: Buffer): string {
  return `${JSON.stringify(loc)}\0${type}\0${bytes.toString('base64')}`
}

/**
 * The edits that encrypt `docs` of a parsed stream as one SOPS group (one MAC over all of them, the
 * same `sops` block in each), reusing ciphertexts from `reuse` where the value is unchanged.
 */
function encryptDocs(
  stream: ParsedStream,
  docs: ParsedDoc[],
  keys: SopsGroupKeys,
  opts: SopsWriteOptions,
  reuse: Map<string, string>,
): Edit[] {
  if (keys.dataKey.length !== DATA_KEY_BYTES) throw new KsealError('ERR_USAGE', 'a SOPS data key is 32 bytes')
  const random = opts.random ?? defaultRandom
  const rules = compileRules(keys.rules)
  const hash = new MacHash(Boolean(keys.macOnlyEncrypted))
  const edits: Edit[] = []
  for (const d of docs) {
    if (d.metadataPair) throw new KsealError('ERR_INPUT', 'already has a sops entry', where(d))
    if (!d.map || d.map.items.length === 0) throw new KsealError('ERR_INPUT', 'an empty document cannot be encrypted with SOPS', where(d))
    const secret = where(d).secret !== undefined
    for (const leaf of d.leaves) {
      const v = leaf.plain
      if (v.type === 'null') continue
      if (v.type === 'uint')
        throw new KsealError('ERR_INPUT', 'an integer beyond 64 bits, which sops cannot hold', {...where(d), key: leaf.loc.join('.')})
      const encrypted = rules.encrypted(leaf.path)
      const bytes = goBytes(v)
      hash.add(bytes, encrypted)
      if (!encrypted || (v.type === 'str' && v.value === '')) continue
      if (secret) sameToKubernetes(d, leaf.loc, v)
      const token = reuse.get(reuseKey(leaf.loc, v.type, bytes)) ?? encryptTyped(keys.dataKey, v, pathAad(leaf.path), random(IV_BYTES))
      edits.push(tokenEditFor(stream, leaf.node, leaf.flow, token))
    }
  }
  const lastModified = formatRfc3339((opts.now ?? (() => new Date()))())
  const mac = encryptMac(keys.dataKey, hash.hex(), rfc3339RoundTrip(lastModified)!, random(IV_BYTES))
  const meta = metadataObject({
    lastModified,
    mac,
    version: SOPS_WRITE_VERSION,
    keyGroups: [keys.entries],
    rules: rules.spec,
    macOnlyEncrypted: Boolean(keys.macOnlyEncrypted),
  })
  for (const d of docs) edits.push(insertEnvelopeEdit(stream.text, d.map!, meta, METADATA_KEY, stream.eol))
  return edits
}

/**
 * An `ENC[…]` in place of a value's scalar, as sops writes it: plain, or quoted where the value was
 * quoted and where a plain one would not parse (flow collections, JSON). A block scalar becomes a
 * plain one on the key's line (sops's reader would take the block's line break into the value).
 */
function tokenEditFor(stream: ParsedStream, node: Scalar, flow: boolean, token: string): Edit {
  const [start, end] = node.range!
  if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED')
    return {start, end, text: token + (stream.text[end - 1] === '\n' ? stream.eol : '')}
  if (flow && node.type === 'PLAIN') return {start, end, text: `"${token}"`}
  return tokenEdit(stream.text, node, token, stream.eol)
}

/**
 * Encrypts a whole text (every document, or those listed) as one SOPS group with the given keys.
 * The low-level writer: `encryptSecretsToSops` and `reencryptSops` are built on it, and tests use it
 * with a fixed data key, entries, clock and randomness for frozen vectors.
 */
export function encryptSops(
  text: string,
  keys: SopsGroupKeys,
  opts: SopsWriteOptions & {file?: string; dialect?: Dialect; documents?: number[]} = {},
): string {
  const stream = parseStream(text, opts.dialect ?? sopsDialect(text, opts.file), opts.file)
  const docs = opts.documents ? opts.documents.map((i) => stream.docs[i]) : stream.docs.filter((d) => d.map)
  return applyEdits(text, encryptDocs(stream, docs, keys, opts, new Map()))
}

export interface EncryptSecretsOptions extends SopsWriteOptions {
  file?: string
  /** Every plain Secret's recipients; or, per Secret, its recipients, or null to leave it as it is (another format's). */
  recipients: SopsRecipient[] | ((s: SecretDoc) => Promise<SopsRecipient[] | null>)
  keys: SopsMasterKeys
  /** Hash only the encrypted values (sops ≥ 3.9 `mac_only_encrypted`), so edits outside data/stringData do not break the MAC. */
  macOnlyEncrypted?: boolean
}

/**
 * Encrypts every plain Secret of a manifest stream (YAML or JSON) as its own SOPS document — its
 * own data key, wrapped for each recipient — with `encrypted_regex: ^(data|stringData)$`. Other
 * documents, and Secrets that already carry a `sops` block, are left as they are. Values must read
 * the same to Kubernetes (YAML 1.1) and to sops (YAML 1.2): one that does not (`0o17`, `1_000`
 * unquoted) is refused with a hint to quote it.
 */
export async function encryptSecretsToSops(text: string, opts: EncryptSecretsOptions): Promise<string> {
  const recipientsOf = typeof opts.recipients === 'function' ? opts.recipients : async () => opts.recipients as SopsRecipient[]
  const dialect = sopsDialect(text, opts.file)
  // Kubernetes's reading first: Secrets well formed, values strings, data base64.
  const manifests = parseManifests(text, opts.file)
  const stream = parseStream(text, dialect, opts.file)
  const targets: {doc: ParsedDoc; recipients: SopsRecipient[]}[] = []
  for (const s of manifests.secrets) {
    const index = s.where.document! - 1
    if (manifests.docs[index].contents !== s.map)
      throw new KsealError(
        'ERR_INPUT',
        'a Secret inside a List cannot be written as SOPS (sops metadata belongs to a whole document); put each Secret in its own document',
        s.where,
      )
    if (stream.docs[index].metadataPair) continue // already SOPS
    const recipients = await recipientsOf(s)
    if (!recipients) continue
    if (recipients.length === 0) throw new KsealError('ERR_USAGE', 'no recipients for the SOPS file', s.where)
    if (s.envelopePair) throw new KsealError('ERR_INPUT', 'already encrypted by kseal; decrypt it first to write it as SOPS', s.where)
    for (const v of s.values) {
      if (v.field === 'data' && v.value !== null) {
        try {
          valueBytes(v)
        } catch (e) {
          throw (e as KsealError).at(s.where)
        }
      }
    }
    targets.push({doc: stream.docs[index], recipients})
  }
  const random = opts.random ?? defaultRandom
  const now = (opts.now ?? (() => new Date()))()
  // Every Secret's key is wrapped at once (KMS calls and gpg runs overlap within their caps).
  const dataKeys = targets.map(() => random(DATA_KEY_BYTES))
  const entries = await Promise.all(dataKeys.map((k, i) => opts.keys.wrap(targets[i].recipients, k, now)))
  const edits = targets.flatMap(({doc: d}, i) => {
    const keys: SopsGroupKeys = {dataKey: dataKeys[i], entries: entries[i], rules: SECRET_RULES, macOnlyEncrypted: opts.macOnlyEncrypted}
    return encryptDocs(stream, [d], keys, {...opts, now: () => now}, new Map())
  })
  return edits.length ? applyEdits(text, edits) : text
}

/** A Secret's data or stringData value must be a string to sops too (YAML 1.2), or sops would write it back as another type. */
function sameToKubernetes(d: ParsedDoc, loc: (string | number)[], v: TypedValue): void {
  if (loc.length === 2 && (loc[0] === 'data' || loc[0] === 'stringData') && v.type !== 'str') {
    throw new KsealError(
      'ERR_INPUT',
      `reads as a string to Kubernetes but as a${v.type === 'int' ? 'n' : ''} ${v.type} to sops and Flux (YAML 1.2); quote it`,
      {...where(d), key: loc.join('.')},
    )
  }
}

/**
 * Re-encrypts the edited plaintext of an opened SOPS file (as `decryptedText` gave it, then changed)
 * with the same data keys, recipients and rules, keeping the ciphertext of every unchanged value;
 * `lastmodified` and the MAC are new. A file whose documents share one `sops` block may gain or lose
 * documents; otherwise documents are matched by position and their number must not change.
 */
export function reencryptSops(old: OpenedSops, newText: string, opts: SopsWriteOptions = {}): string {
  const file = old.sops.file
  const stream = parseStream(newText, old.sops.stream.dialect, file)
  for (const d of stream.docs) {
    if (d.metadataPair) throw new KsealError('ERR_INPUT', 'the edited text still has a sops entry; edit the decrypted text', where(d))
  }
  const oldDocs = old.sops.stream.docs
  const single = old.groups.length === 1 && old.groups[0].documents.length === oldDocs.length
  if (!single && stream.docs.length !== oldDocs.length) {
    throw new KsealError(
      'ERR_INPUT',
      `the edit has ${stream.docs.length} documents where the file had ${oldDocs.length}; documents with their own sops metadata cannot be added or removed here`,
      {file},
    )
  }
  const edits: Edit[] = []
  for (const g of old.groups) {
    const reuse = new Map<string, string>()
    for (const v of g.values) {
      const enc = v.ciphertext ? parseEnc(v.ciphertext) : null
      if (enc && v.value) reuse.set(reuseKey(v.loc, enc.type, goBytes(v.value)), v.ciphertext!)
    }
    const docs = single ? stream.docs.filter((d) => d.map) : g.documents.map((i) => stream.docs[i])
    const keys: SopsGroupKeys = {
      dataKey: g.dataKey,
      entries: g.metadata.keyGroups[0],
      rules: g.metadata.rules,
      macOnlyEncrypted: g.metadata.macOnlyEncrypted,
    }
    if (g.metadata.keyGroups.length !== 1)
      throw new KsealError('ERR_INPUT', 'SOPS files with several key groups cannot be re-encrypted by kseal', {file})
    edits.push(...encryptDocs(stream, docs, keys, opts, reuse))
  }
  return applyEdits(newText, edits)
}
