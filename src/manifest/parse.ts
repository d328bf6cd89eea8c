/**
 * Manifests as documents: parses multi-document YAML or JSON with the `yaml` package, reading
 * scalars and keys as kubectl does (kubeyaml.ts), finds every core v1 Secret — also inside `List`s — and describes
 * each value with its source range, so callers can rewrite just those bytes and leave every other
 * byte (comments, quoting, blank lines, CRLF) as it was.
 */
import {Composer, type Document, isMap, isScalar, isSeq, LineCounter, type Node, type Pair, Parser, Scalar, visit, type YAMLMap} from 'yaml'
import {KsealError, type Where} from '../core/errors.js'
import {type Field, looksLikeToken} from '../envelope/envelope.js'
import {checkKubeText, KUBE_YAML} from './kubeyaml.js'

export const ENVELOPE_KEY = 'kseal'

export interface SecretValue {
  field: Field
  key: string
  /** The value's scalar node; null when the YAML value is null (`key:` or `key: null`). */
  node: Scalar | null
  /** The string value (null for a null value). */
  value: string | null
  /** True when the value is a kseal token. */
  encrypted: boolean
}

export interface SecretDoc {
  where: Where
  namespace: string
  name: string
  map: YAMLMap
  values: SecretValue[]
  /** The `kseal` pair holding the envelope, when the Secret is (at least partly) encrypted. */
  envelopePair: Pair | null
  /** The envelope as plain data (unvalidated). */
  envelopeRaw: unknown
}

export interface ParsedManifests {
  text: string
  docs: Document.Parsed[]
  secrets: SecretDoc[]
  /** `\r\n` when the file uses CRLF line ends. */
  eol: string
}

const FIELDS: Field[] = ['data', 'stringData']

function get(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((p) => isScalar(p.key) && p.key.value === key) as Pair | undefined
}

function getString(map: YAMLMap, key: string): string | undefined {
  const p = get(map, key)
  return p && isScalar(p.value) && typeof p.value.value === 'string' ? p.value.value : undefined
}

/** Rejects input that is not text, or that kubectl would not read, before YAML gets a chance to produce a confusing message. */
function checkText(text: string, file: string | undefined): void {
  if (text.includes('\u0000')) throw new KsealError('ERR_INPUT', 'not a text file (binary data)', {file})
  checkKubeText(text, file)
}

const PARSE_OPTIONS = {...KUBE_YAML, uniqueKeys: true, prettyErrors: false} as const

/** The documents of a stream, composed one at a time (what parseAllDocuments does, lazily). */
function* documents(text: string, lineCounter: LineCounter): Generator<Document.Parsed> {
  const composer = new Composer(PARSE_OPTIONS)
  yield* composer.compose(new Parser(lineCounter.addNewLine).parse(text)) as Generator<Document.Parsed>
}

/** Checks one document and adds its Secrets; throws on a YAML error, naming line and column. */
function take(doc: Document.Parsed, i: number, file: string | undefined, lineCounter: LineCounter, out: SecretDoc[]): void {
  const where: Where = {file, document: i + 1}
  if (doc.errors.length > 0) {
    const err = doc.errors[0]
    const pos = lineCounter.linePos(err.pos[0])
    const msg = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
    throw new KsealError('ERR_INPUT', `malformed YAML at line ${pos.line}, column ${pos.col}: ${msg}`, where)
  }
  refuseMergeKeys(doc, where, lineCounter)
  collect(doc.contents, where, out)
}

export function parseManifests(text: string, file?: string): ParsedManifests {
  checkText(text, file)
  const lineCounter = new LineCounter()
  const docs: Document.Parsed[] = []
  const secrets: SecretDoc[] = []
  for (const doc of documents(text, lineCounter)) {
    take(doc, docs.length, file, lineCounter, secrets)
    docs.push(doc)
  }
  return {text, docs, secrets, eol: eolOf(text)}
}

/** Documents parsed between two turns of the event loop in parseManifestsIncrementally. */
const DOCS_PER_TURN = 64

/**
 * Like parseManifests, but hands each Secret to `onSecret` as soon as its document is parsed and
 * lets the event loop run every few dozen documents, so the key operations for the first Secrets of
 * a long stream (a KMS call, an RSA unwrap on a thread) run while the rest is still being parsed.
 */
export async function parseManifestsIncrementally(
  text: string,
  file: string | undefined,
  onSecret: (s: SecretDoc, eol: string) => void,
): Promise<ParsedManifests> {
  checkText(text, file)
  const lineCounter = new LineCounter()
  const eol = eolOf(text)
  const docs: Document.Parsed[] = []
  const secrets: SecretDoc[] = []
  for (const doc of documents(text, lineCounter)) {
    const before = secrets.length
    take(doc, docs.length, file, lineCounter, secrets)
    docs.push(doc)
    for (const s of secrets.slice(before)) onSecret(s, eol)
    if (docs.length % DOCS_PER_TURN === 0) await new Promise((r) => setImmediate(r))
  }
  return {text, docs, secrets, eol}
}

const eolOf = (text: string) => (text.includes('\r\n') ? '\r\n' : '\n')

/**
 * Whether an apiVersion names the core API group: `v1`, or an empty group (`/v1`, which Kubernetes
 * reads the same). A kind named Secret in any other group (a CRD's, `vault.example.com/v1alpha1`)
 * is someone else's resource and passes through every command untouched.
 */
export const isCoreGroup = (apiVersion: unknown): boolean =>
  typeof apiVersion !== 'string' || !apiVersion.includes('/') || apiVersion.startsWith('/')

/** The only Secret that is kseal's: core group, version v1. */
export const isCoreSecret = (kind: unknown, apiVersion: unknown): boolean =>
  kind === 'Secret' && (apiVersion === 'v1' || apiVersion === '/v1')

function collect(node: unknown, where: Where, out: SecretDoc[], item?: number): void {
  if (!isMap(node)) return
  const kind = getString(node, 'kind')
  const apiVersion = getString(node, 'apiVersion')
  const here = item === undefined ? where : {...where, secret: undefined}
  if (kind === 'Secret' && isCoreGroup(apiVersion)) {
    // A core Secret with another version (or none) is a mistake, not someone else's kind.
    if (!isCoreSecret(kind, apiVersion)) {
      throw new KsealError('ERR_INPUT', `a Secret must have apiVersion v1, not ${JSON.stringify(apiVersion ?? null)}`, here)
    }
    out.push(secretDoc(node, where, item))
    return
  }
  const items = get(node, 'items')
  if (kind !== undefined && kind.endsWith('List') && items && isSeq(items.value)) {
    items.value.items.forEach((it, j) => collect(it, where, out, j + 1))
    return
  }
  if ((kind === undefined || apiVersion === undefined) && FIELDS.some((f) => get(node, f))) {
    throw new KsealError('ERR_INPUT', 'has data but no kind/apiVersion: not a Kubernetes object', here)
  }
}

function secretDoc(map: YAMLMap, where: Where, item: number | undefined): SecretDoc {
  const meta = get(map, 'metadata')
  const metaMap = meta && isMap(meta.value) ? meta.value : undefined
  const name = (metaMap && getString(metaMap, 'name')) ?? ''
  const namespace = (metaMap && getString(metaMap, 'namespace')) ?? ''
  const label = (namespace ? `${namespace}/` : '') + (name || '(unnamed)') + (item === undefined ? '' : ` in item ${item}`)
  const w: Where = {...where, secret: label}
  const values: SecretValue[] = []
  for (const field of FIELDS) {
    const pair = get(map, field)
    if (!pair || pair.value === null || (isScalar(pair.value) && pair.value.value === null)) continue
    if (!isMap(pair.value)) throw new KsealError('ERR_INPUT', `${field} must be a mapping of keys to strings`, w)
    for (const p of pair.value.items) {
      if (!isScalar(p.key) || typeof p.key.value !== 'string') {
        throw new KsealError('ERR_INPUT', `${field} has a key that is not a string`, w)
      }
      const key = p.key.value
      // An unquoted key such as `yes` is the key "true" to Kubernetes: refuse what it reads differently.
      const written = p.key.type === Scalar.PLAIN && !p.key.tag ? p.key.source : undefined
      if (written !== undefined && written !== key) {
        throw new KsealError('ERR_INPUT', `key reads as ${JSON.stringify(key)} to Kubernetes; quote it`, {...w, key: `${field}.${written}`})
      }
      const v = p.value as Node | null
      if (v === null || (isScalar(v) && v.value === null)) {
        values.push({field, key, node: isScalar(v) ? v : null, value: null, encrypted: false})
        continue
      }
      if (!isScalar(v) || typeof v.value !== 'string') {
        const hint = isScalar(v)
          ? ` (it reads as ${typeof v.value}; quote it)`
          : isMap(v) && /\{\{/.test(String(p.value))
            ? ' (a template?)'
            : ''
        throw new KsealError('ERR_INPUT', `value is not a string${hint}`, {...w, key: `${field}.${key}`})
      }
      values.push({field, key, node: v, value: v.value, encrypted: looksLikeToken(v.value)})
    }
  }
  const envelopePair = get(map, ENVELOPE_KEY) ?? null
  const envelopeRaw = envelopePair ? (envelopePair.value as Node | null)?.toJSON() : undefined
  return {where: w, namespace, name, map, values, envelopePair, envelopeRaw}
}

const MERGE_TAG = 'tag:yaml.org,2002:merge'
/** Kinds whose values kseal reads: a merge key in one would hide values from it. */
const GUARDED_KINDS = new Set(['Secret', 'SealedSecret'])

/** The first YAML merge key (`<<`, or a key tagged `!!merge`) in a node, if any. */
export function findMergeKey(node: unknown): Scalar | undefined {
  let found: Scalar | undefined
  visit(node as Node, {
    Pair(_, pair) {
      const k = pair.key
      if (isScalar(k) && (typeof k.value === 'symbol' || k.tag === MERGE_TAG || (k.value === '<<' && k.type === Scalar.PLAIN))) {
        found = k
        return visit.BREAK
      }
      return undefined
    },
  })
  return found
}

/**
 * Refuses a document whose Secrets (or SealedSecrets) use a YAML merge key or merge tag anywhere.
 * kubectl (go-yaml) resolves merges, so `<<: {stringData: {password: x}}` would apply a value that
 * kseal never sees as a value — unchecked by decrypt, unnoticed by check. Merge keys elsewhere
 * (a Deployment's anchors) are left alone; the test is on the document as kubectl reads it, so a
 * Secret that only becomes one through a merge is caught too.
 */
export function refuseMergeKeys(doc: Document.Parsed, where: Where, lineCounter?: LineCounter): void {
  const key = findMergeKey(doc.contents)
  if (!key) return
  let js: unknown
  try {
    js = doc.toJS({maxAliasCount: 100})
  } catch {
    js = null
  }
  const objects = (o: unknown): Record<string, unknown>[] => {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return []
    const r = o as Record<string, unknown>
    return typeof r.kind === 'string' && r.kind.endsWith('List') && Array.isArray(r.items) ? r.items.flatMap(objects) : [r]
  }
  const guarded = objects(js).find((o) => typeof o.kind === 'string' && GUARDED_KINDS.has(o.kind))
  if (!guarded && js !== null) return
  const meta = (guarded?.metadata ?? {}) as {name?: unknown; namespace?: unknown}
  const secret =
    (typeof meta.namespace === 'string' && meta.namespace ? `${meta.namespace}/` : '') +
    (typeof meta.name === 'string' && meta.name ? meta.name : '(unnamed)')
  const at = lineCounter && key.range ? ` at line ${lineCounter.linePos(key.range[0]).line}` : ''
  throw new KsealError(
    'ERR_INPUT',
    `uses a YAML merge key (<<)${at}: kubectl would merge in values that kseal does not see; write the keys out instead`,
    {...where, secret},
  )
}
