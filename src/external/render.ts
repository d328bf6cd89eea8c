/**
 * (ExternalSecret, store, fetched values) → the exact Secret the controller writes; shared by the
 * controller and `kseal external render`, so what the command shows is what the cluster gets.
 *
 * As external-secrets does it: `dataFrom` entries in order (later keys win), then `data` entries;
 * `extract` turns a JSON object into keys (strings as they are, other values as JSON), `find` gives
 * one key per remote name; those keys are converted (`conversionStrategy`) and every value decoded
 * (`decodingStrategy`). With `target.template.data` the Secret holds the rendered keys only
 * (`mergePolicy: Merge` keeps the fetched ones beside them); templates see every fetched key.
 *
 * One remote call per remote key: fetches are cached for the render, so two entries reading
 * properties of one secret, or an extract and a data entry of it, make one call. Reads run at once
 * (at most 8 in flight); entries are then assembled in order.
 *
 * Ownership: with creationPolicy Owner or Orphan the Secret is wholly kseal's (an existing Secret
 * that is not this ExternalSecret's is refused unless annotated kseal.dev/managed: "true");
 * with Merge kseal writes its keys into an existing Secret and never creates one. With
 * deletionPolicy Delete a remote key that is gone counts as empty, and when every one is gone the
 * result is `secret: null`: delete the Secret.
 */
import {isKsealError, KsealError} from '../core/errors.js'
import {Limiter} from '../core/limit.js'
import {isSecretKey} from './fields.js'
import {MANAGED_ANNOTATION, RESERVED_PREFIX} from '../core/names.js'
import {JsonSyntaxError, type JsonNode, lookupProperty, nodeString, parseJson} from './property.js'
import type {FetchRef, Provider, RemoteValue} from './providers/index.js'
import {READ_CONCURRENCY} from './providers/types.js'
import {compileRe2} from '../core/regex.js'
import {checkStoreUse, esLabel} from './store.js'
import {goBase64Decode} from './template/funcs.js'
import {compileTemplate, type Limits} from './template/index.js'
import {encodeText, marshalNode, toJson, type Value} from './template/values.js'
import {
  type ConversionStrategy,
  type DecodingStrategy,
  EXTERNAL_API_VERSION,
  EXTERNAL_SECRET_KIND,
  type ExternalSecret,
  type OwnerReference,
  type RemoteRef,
  type SecretObject,
  type SecretStore,
} from './types.js'

export const MANAGED_BY_LABEL = 'kseal.dev/managed-by'
export const MANAGED_BY_VALUE = 'external-secrets'
/** On every Secret an ExternalSecret writes: the ExternalSecret's name. */
export const EXTERNAL_SECRET_ANNOTATION = 'kseal.dev/external-secret'
/** The API server's limit on a Secret's data. */
export const MAX_SECRET_BYTES = 1024 * 1024

export interface RenderDeps {
  /** The store's provider, opened for the ExternalSecret's namespace (providers/index.ts). */
  provider: Provider
  /** Labels of a namespace, for ClusterSecretStore namespaceSelector conditions. */
  namespaceLabels?: (namespace: string) => Promise<Record<string, string>>
  /**
   * The target Secret as it is now: null = it does not exist; undefined = unknown (render offline:
   * with Merge, the result then holds only kseal's keys).
   */
  existing?: SecretObject | null
  templateLimits?: Limits
  /** The namespace of the controller's own keys: no ExternalSecret there is rendered. */
  keyNamespace?: string
}

/** What one entry read: names and keys, never values. */
export interface Source {
  entry: string
  remoteKey?: string
  version?: string
  property?: string
  find?: {path?: string; regexp?: string; tags?: Record<string, string>; matched: number}
  /** The Secret keys it produced. */
  secretKeys: string[]
  /** deletionPolicy Delete: the remote key is gone, the entry gave nothing. */
  missing?: boolean
}

export interface RenderResult {
  /** The Secret to write; null: every remote key is gone and deletionPolicy is Delete (delete it). */
  secret: SecretObject | null
  sources: Source[]
  /** Remote calls made (fetches; a find counts each key it read). */
  calls: number
}

export function ownerReference(es: ExternalSecret): OwnerReference | undefined {
  if (!es.metadata.uid) return undefined
  return {
    apiVersion: EXTERNAL_API_VERSION,
    kind: EXTERNAL_SECRET_KIND,
    name: es.metadata.name,
    uid: es.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  }
}

/** Whether an existing Secret is this ExternalSecret's to overwrite (Owner and Orphan). */
export function mayOverwrite(existing: SecretObject, es: ExternalSecret): boolean {
  const refs = existing.metadata.ownerReferences ?? []
  if (
    refs.some(
      (r) =>
        r.kind === EXTERNAL_SECRET_KIND &&
        r.apiVersion?.split('/')[0] === EXTERNAL_API_VERSION.split('/')[0] &&
        r.controller &&
        (r.uid === es.metadata.uid || r.name === es.metadata.name),
    )
  )
    return true
  if (refs.some((r) => r.controller)) return false
  const a = existing.metadata.annotations ?? {}
  if (existing.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && a[EXTERNAL_SECRET_ANNOTATION] === es.metadata.name) return true
  return a[MANAGED_ANNOTATION] === 'true'
}

/** A mark of kseal's own that a Secret carries (a key Secret, a SealedSecret's Secret), if any: no ExternalSecret writes into it. */
export function ownMark(s: {metadata?: {labels?: Record<string, string>; annotations?: Record<string, string>}}): string | undefined {
  return Object.keys({...s.metadata?.labels, ...s.metadata?.annotations}).find(
    (k) => k.startsWith(RESERVED_PREFIX) && k !== MANAGED_BY_LABEL && k !== EXTERNAL_SECRET_ANNOTATION && k !== MANAGED_ANNOTATION,
  )
}

export async function renderExternalSecret(es: ExternalSecret, store: SecretStore, deps: RenderDeps): Promise<RenderResult> {
  const what = esLabel(es)
  const fail = (code: 'ERR_INPUT' | 'ERR_NOT_FOUND' | 'ERR_DENIED', msg: string) => new KsealError(code, `${what}: ${msg}`)
  if (deps.keyNamespace !== undefined && es.metadata.namespace === deps.keyNamespace) {
    throw fail(
      'ERR_DENIED',
      `refused: ${deps.keyNamespace} is the namespace of the controller's own keys; no ExternalSecret writes Secrets there`,
    )
  }
  await checkStoreUse(es, store, deps.namespaceLabels)
  const target = es.target
  const existing = deps.existing
  const own = existing && ownMark(existing)
  if (own)
    throw fail(
      'ERR_DENIED',
      `Secret ${es.metadata.namespace}/${target.name} carries ${own}: it is one of kseal's own Secrets, and no ExternalSecret writes into it`,
    )
  if (target.creationPolicy === 'Merge' && existing === null) {
    throw fail(
      'ERR_NOT_FOUND',
      `creationPolicy Merge writes into an existing Secret, and Secret ${es.metadata.namespace}/${target.name} does not exist`,
    )
  }
  if (target.creationPolicy !== 'Merge' && existing && !mayOverwrite(existing, es)) {
    throw fail(
      'ERR_DENIED',
      `Secret ${es.metadata.namespace}/${target.name} exists and is not this ExternalSecret's, so it is left alone; delete it, use creationPolicy: Merge, or annotate it ${MANAGED_ANNOTATION}=true`,
    )
  }

  let calls = 0
  const cache = new Map<string, Promise<RemoteValue>>()
  const limit = new Limiter(READ_CONCURRENCY)
  const cacheKey = (ref: FetchRef) => deps.provider.cacheKey?.(ref) ?? `${ref.key}\u0000${ref.version ?? ''}`
  const fetch = (ref: FetchRef): Promise<RemoteValue> => {
    const k = cacheKey(ref)
    let p = cache.get(k)
    if (!p) {
      calls++
      p = limit.run(() => deps.provider.fetch(ref))
      // Read later, in entry order; an entry before it may fail first and leave it unread.
      p.catch(() => undefined)
      cache.set(k, p)
    }
    return p
  }
  const deleting = target.deletionPolicy === 'Delete'
  /** The remote value, or undefined when it is gone and deletionPolicy is Delete. */
  const get = async (ref: FetchRef): Promise<RemoteValue | undefined> => {
    try {
      return await fetch(ref)
    } catch (e) {
      if (deleting && isKsealError(e) && e.code === 'ERR_NOT_FOUND') return undefined
      throw e
    }
  }

  // Finds first (their values fill the cache), then every other read at once, then entries in order.
  const finds = new Map<number, Map<string, RemoteValue>>()
  for (const [i, entry] of es.dataFrom.entries()) {
    if (!entry.find) continue
    const f = entry.find
    const match = f.nameRegexp !== undefined ? compileRe2(f.nameRegexp, `${what}: spec.dataFrom[${i}].find.name.regexp`) : undefined
    const found = await deps.provider.find(f, match)
    calls += found.size
    for (const [n, v] of found) cache.set(cacheKey({key: n}), Promise.resolve(v))
    finds.set(i, found)
  }
  for (const entry of es.dataFrom) if (entry.extract) fetch(entry.extract)
  for (const d of es.data) fetch(d.remoteRef)

  const sources: Source[] = []
  const fetched = new Map<string, Uint8Array>()
  let present = 0
  let remoteEntries = 0

  for (const [i, entry] of es.dataFrom.entries()) {
    const name = `spec.dataFrom[${i}]`
    remoteEntries++
    let pairs: [string, Uint8Array][]
    const source: Source = {entry: name, secretKeys: []}
    if (entry.extract) {
      const ref = entry.extract
      Object.assign(source, {remoteKey: ref.key, version: ref.version, property: ref.property})
      const v = await get(ref)
      if (!v) {
        sources.push({...source, missing: true})
        continue
      }
      pairs = extract(v, ref, (m) => fail('ERR_INPUT', `${name}.extract: remote key ${JSON.stringify(ref.key)}: ${m}`))
      pairs = convertKeys(pairs, ref.conversionStrategy, `${name}.extract`, fail)
      pairs = pairs.map(([k, b]) => [
        k,
        decode(b, ref.decodingStrategy, () =>
          fail('ERR_INPUT', `${name}.extract: the value for key ${k} is not ${ref.decodingStrategy}-encoded`),
        ),
      ])
    } else {
      const f = entry.find!
      const found = finds.get(i)!
      source.find = {path: f.path, regexp: f.nameRegexp, tags: Object.keys(f.tags ?? {}).length ? f.tags : undefined, matched: found.size}
      pairs = [...found].map(([n, v]) => [n, whole(v)])
      pairs = convertKeys(pairs, f.conversionStrategy, `${name}.find`, fail)
      pairs = pairs.map(([k, b]) => [
        k,
        decode(b, f.decodingStrategy, () => fail('ERR_INPUT', `${name}.find: the value for key ${k} is not ${f.decodingStrategy}-encoded`)),
      ])
    }
    present++
    for (const [k, b] of pairs) fetched.set(k, b)
    source.secretKeys = pairs.map(([k]) => k)
    sources.push(source)
  }

  for (const [i, d] of es.data.entries()) {
    const name = `spec.data[${i}]`
    const ref = d.remoteRef
    remoteEntries++
    const source: Source = {entry: name, remoteKey: ref.key, version: ref.version, property: ref.property, secretKeys: [d.secretKey]}
    const v = await get(ref)
    if (!v) {
      sources.push({...source, secretKeys: [], missing: true})
      continue
    }
    const bytes = value(v, ref, (m) => fail('ERR_INPUT', `${name}.remoteRef: remote key ${JSON.stringify(ref.key)}: ${m}`))
    fetched.set(
      d.secretKey,
      decode(bytes, ref.decodingStrategy, () =>
        fail('ERR_INPUT', `${name}: the value for ${d.secretKey} is not ${ref.decodingStrategy}-encoded`),
      ),
    )
    present++
    sources.push(source)
  }

  if (deleting && remoteEntries > 0 && present === 0) return {secret: null, sources, calls}

  const tpl = target.template
  let data = fetched
  if (tpl && Object.keys(tpl.data).length > 0) {
    const rendered = new Map<string, Uint8Array>()
    for (const [k, text] of Object.entries(tpl.data))
      rendered.set(k, compileTemplate(text, `${what}: spec.target.template.data.${k}`).execute(fetched, deps.templateLimits))
    data = tpl.mergePolicy === 'Merge' ? new Map([...fetched, ...rendered]) : rendered
  }

  let size = 0
  for (const [k, b] of data) {
    if (!isSecretKey(k))
      throw fail(
        'ERR_INPUT',
        `${JSON.stringify(k.slice(0, 80))} is not a valid Secret key ([-._a-zA-Z0-9]+, at most 253); rename it with data[] or a template`,
      )
    size += k.length + b.length
  }
  if (size > MAX_SECRET_BYTES)
    throw fail('ERR_INPUT', `the Secret's data would be ${size} bytes, more than Kubernetes allows (${MAX_SECRET_BYTES})`)

  const encoded = Object.fromEntries(
    [...data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, b]) => [k, Buffer.from(b).toString('base64')]),
  )
  return {secret: buildSecret(es, encoded, existing ?? undefined), sources, calls}
}

function buildSecret(es: ExternalSecret, data: Record<string, string>, existing: SecretObject | undefined): SecretObject {
  const {target} = es
  const tpl = target.template
  const labels = {...(tpl?.labels ?? {}), [MANAGED_BY_LABEL]: MANAGED_BY_VALUE}
  const annotations: Record<string, string> = {...(tpl?.annotations ?? {}), [EXTERNAL_SECRET_ANNOTATION]: es.metadata.name}
  const owner = target.creationPolicy === 'Owner' ? ownerReference(es) : undefined
  if (target.creationPolicy === 'Merge' && existing) {
    if (existing.immutable)
      throw new KsealError(
        'ERR_INPUT',
        `${esLabel(es)}: creationPolicy Merge cannot write into Secret ${es.metadata.namespace}/${target.name}: it is immutable`,
      )
    return {
      ...existing,
      metadata: {
        ...existing.metadata,
        labels: {...(existing.metadata.labels ?? {}), ...labels},
        annotations: {...(existing.metadata.annotations ?? {}), ...annotations},
      },
      data: {...(existing.data ?? {}), ...data},
    }
  }
  const metadata: SecretObject['metadata'] = {name: target.name, namespace: es.metadata.namespace, labels, annotations}
  if (target.creationPolicy === 'Merge') return {apiVersion: 'v1', kind: 'Secret', metadata, type: tpl?.type ?? 'Opaque', data}
  if (existing?.metadata.annotations?.[MANAGED_ANNOTATION] !== undefined)
    annotations[MANAGED_ANNOTATION] = existing.metadata.annotations[MANAGED_ANNOTATION]
  // Other owners stay; another controller (an earlier ExternalSecret of the same name) gives way.
  const owners = (existing?.metadata.ownerReferences ?? []).filter((r) => !r.controller)
  if (owner) owners.push(owner)
  if (owners.length) metadata.ownerReferences = owners
  if (existing?.metadata.resourceVersion) metadata.resourceVersion = existing.metadata.resourceVersion
  if (existing?.metadata.uid) metadata.uid = existing.metadata.uid
  const out: SecretObject = {apiVersion: 'v1', kind: 'Secret', metadata, type: tpl?.type ?? 'Opaque', data}
  if (target.immutable) out.immutable = true
  return out
}

// ---- values ----

function json(v: RemoteValue, bad: (m: string) => KsealError): JsonNode {
  if (v.kind === 'json') return v.node
  if (v.kind === 'map') throw bad('a Secret of the kubernetes provider is not JSON')
  try {
    return parseJson(Buffer.from(v.bytes).toString('utf8'))
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw bad(`the value is not JSON (${e.message}), so property and extract cannot read it`)
    throw e
  }
}

/** A map as Go's json.Marshal(map[string]string) writes it: sorted keys, HTML-safe. */
function mapJson(entries: Map<string, Uint8Array>): Uint8Array {
  const m = new Map<string, Value>([...entries].map(([k, b]) => [encodeText(k), Buffer.from(b).toString('latin1')]))
  return Buffer.from(toJson(m), 'latin1')
}

/**
 * A JSON value that is not a string, as bytes. From a text value (AWS) it is the text as stored, as
 * gjson returns it; from Vault's decoded data it is what Go's json.Marshal writes (sorted keys), as
 * external-secrets' Vault provider returns it.
 */
function jsonBytes(v: RemoteValue, n: JsonNode): Uint8Array {
  return Buffer.from(v.kind === 'json' ? marshalNode(n) : n.raw, 'utf8')
}

/** A whole remote value as bytes: what `find` gives each key, and a data entry without property. */
function whole(v: RemoteValue): Uint8Array {
  if (v.kind === 'bytes') return v.bytes
  if (v.kind === 'json') return jsonBytes(v, v.node)
  return mapJson(v.entries)
}

/** A data entry's value: the whole value, or its property. */
function value(v: RemoteValue, ref: RemoteRef, bad: (m: string) => KsealError): Uint8Array {
  if (ref.property === undefined) return whole(v)
  if (v.kind === 'map') {
    const b = v.entries.get(ref.property)
    if (!b) throw bad(`the Secret has no key ${JSON.stringify(ref.property)}`)
    return b
  }
  const node = lookupProperty(json(v, bad), ref.property)
  if (!node) throw bad(`property ${JSON.stringify(ref.property)} not found`)
  return node.type === 'object' || node.type === 'array' ? jsonBytes(v, node) : Buffer.from(nodeString(node), 'utf8')
}

/** extract: a JSON object's keys (strings as they are, other values as JSON), or a Secret's keys. */
function extract(v: RemoteValue, ref: RemoteRef, bad: (m: string) => KsealError): [string, Uint8Array][] {
  let node: JsonNode
  if (v.kind === 'map') {
    if (ref.property === undefined) return [...v.entries]
    const b = v.entries.get(ref.property)
    if (!b) throw bad(`the Secret has no key ${JSON.stringify(ref.property)}`)
    node = json({kind: 'bytes', bytes: b}, bad)
  } else {
    node = json(v, bad)
    if (ref.property !== undefined) {
      const n = lookupProperty(node, ref.property)
      if (!n) throw bad(`property ${JSON.stringify(ref.property)} not found`)
      node = n
    }
  }
  if (node.type !== 'object')
    throw bad(
      `${ref.property === undefined ? 'the value' : `property ${JSON.stringify(ref.property)}`} is not a JSON object, so it cannot be extracted into keys`,
    )
  return node.entries.map(([k, n]) => [k, n.type === 'string' ? Buffer.from(n.value, 'utf8') : jsonBytes(v, n)])
}

/** external-secrets' key conversion: characters other than letters, digits, `-`, `.` and `_` become `_` (Default) or `_UXXXX_` (Unicode). */
function convertKeys(
  pairs: [string, Uint8Array][],
  strategy: ConversionStrategy,
  entry: string,
  fail: (code: 'ERR_INPUT', m: string) => KsealError,
): [string, Uint8Array][] {
  const seen = new Set<string>()
  return pairs.map(([k, b]) => {
    const key = [...k]
      .map((ch) =>
        /[\p{L}\p{N}._-]/u.test(ch) ? ch : strategy === 'Unicode' ? `_U${ch.codePointAt(0)!.toString(16).padStart(4, '0')}_` : '_',
      )
      .join('')
    if (seen.has(key)) throw fail('ERR_INPUT', `${entry}: two remote keys become the Secret key ${JSON.stringify(key.slice(0, 80))}`)
    seen.add(key)
    return [key, b]
  })
}

/** decodingStrategy: None, Base64, Base64URL, or Auto (base64 in either alphabet, padded or not, when it is; else as it is). */
function decode(b: Uint8Array, strategy: DecodingStrategy, bad: () => KsealError): Uint8Array {
  if (strategy === 'None') return b
  const s = Buffer.from(b).toString('latin1')
  if (strategy === 'Base64' || strategy === 'Base64URL') {
    const out = goBase64Decode(s, strategy === 'Base64URL')
    if (!out) throw bad()
    return out
  }
  const pad = s.length % 4 === 0 ? s : s.length % 4 === 1 ? s : s + '='.repeat(4 - (s.length % 4))
  return (
    goBase64Decode(s, false) ??
    goBase64Decode(s, true) ??
    (/^[A-Za-z0-9+/]+$/.test(s) ? goBase64Decode(pad, false) : undefined) ??
    (/^[A-Za-z0-9_-]+$/.test(s) ? goBase64Decode(pad, true) : undefined) ??
    b
  )
}
