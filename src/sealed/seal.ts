/**
 * Sealing with the public certificate alone: a v1 Secret becomes a `kseal.dev/v1` SealedSecret, and
 * new values are merged into an existing one as a new envelope part. Nothing here needs a private key.
 */
import type {Recipient, RecipientEntry} from '../../keys/types.js'
import {type Binding, bindingV2, encryptedAsFor, keyBinding, type Scope} from '../envelope/binding.js'
import {cmp, deriveKeys, encryptValue, FORMAT_VERSION, newDataKey, type Version} from '../envelope/envelope.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {dict, isObj, type Obj} from '../core/guards.js'
import {isCoreSecret} from '../manifest/parse.js'
import {valueBytes} from '../manifest/secrets.js'
import {type Pairs, partMac, planParts, sealedBinding, tokenDigest} from './chain.js'
import {parseSealedEnvelope, parseSealedSecret, stringMap} from './parse.js'
import {
  MAX_PARTS,
  SEALED_API_VERSION,
  SEALED_KIND,
  type SealedEnvelope,
  sealedLabel,
  type SealedPart,
  type SealedSecretObject,
  type SealedTemplate,
} from './types.js'

const has = (o: object, k: string) => Object.hasOwn(o, k)
/** Annotations never copied from a Secret into a template: kubectl's copy of the applied object holds the plaintext. */
const DROPPED_ANNOTATIONS = ['kubectl.kubernetes.io/last-applied-configuration']
/** Kubernetes' rule for Secret data keys. */
const KEY_RE = /^[-._a-zA-Z0-9]+$/

/** A Secret's values as bytes, in order: `data` decoded, then new `stringData` keys as UTF-8 (stringData wins, as in Kubernetes). */
function secretValues(secret: Obj, where: Where): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const field of ['data', 'stringData'] as const) {
    const m = secret[field]
    if (m === undefined || m === null) continue
    if (!isObj(m)) throw new KsealError('ERR_INPUT', `${field} must be a mapping of keys to strings`, where)
    for (const [key, v] of Object.entries(m)) {
      const at = {...where, key: `${field}.${key}`}
      if (!KEY_RE.test(key)) throw new KsealError('ERR_INPUT', 'is not a valid Secret key (letters, digits, "-", "_" and "." only)', at)
      if (v !== null && typeof v !== 'string')
        throw new KsealError('ERR_INPUT', `value is not a string (it reads as ${typeof v}; quote it)`, at)
      if (typeof v === 'string' && /^\s*kseal:v\d+:/.test(v)) {
        throw new KsealError('ERR_INPUT', 'is already encrypted with kseal: decrypt it first (kseal decrypt FILE | kseal seal ...)', at)
      }
      const bytes = v === null ? Buffer.alloc(0) : valueBytes({field, key, node: null, value: v, encrypted: false})
      out.set(key, bytes)
    }
  }
  return out
}

function checkSecret(secret: Record<string, unknown>, needName = true): {meta: Obj; where: Where} {
  if (!isObj(secret) || !isCoreSecret(secret.kind, secret.apiVersion)) {
    throw new KsealError('ERR_INPUT', 'only v1 Secrets can be sealed')
  }
  const meta = isObj(secret.metadata) ? secret.metadata : {}
  const where: Where = {secret: sealedLabel(meta)}
  if ('kseal' in secret)
    throw new KsealError('ERR_INPUT', 'is encrypted with kseal: decrypt it first (kseal decrypt FILE | kseal seal ...)', where)
  if (needName && (typeof meta.name !== 'string' || meta.name === ''))
    throw new KsealError('ERR_INPUT', 'a Secret needs metadata.name to be sealed', where)
  if (meta.name !== undefined && meta.name !== null && typeof meta.name !== 'string')
    throw new KsealError('ERR_INPUT', 'metadata.name must be a string', where)
  if (meta.namespace !== undefined && meta.namespace !== null && typeof meta.namespace !== 'string') {
    throw new KsealError('ERR_INPUT', 'metadata.namespace must be a string', where)
  }
  return {meta, where}
}

function templateOf(secret: Obj, meta: Obj, where: Where): SealedTemplate {
  const labels = stringMap(meta.labels, 'metadata.labels', where)
  const annotations = stringMap(meta.annotations, 'metadata.annotations', where)
  for (const a of DROPPED_ANNOTATIONS) if (annotations) delete annotations[a]
  const metadata = {
    ...(labels && Object.keys(labels).length ? {labels} : {}),
    ...(annotations && Object.keys(annotations).length ? {annotations} : {}),
  }
  if (secret.type !== undefined && secret.type !== null && typeof secret.type !== 'string')
    throw new KsealError('ERR_INPUT', 'type must be a string', where)
  if (secret.immutable !== undefined && secret.immutable !== null && typeof secret.immutable !== 'boolean') {
    throw new KsealError('ERR_INPUT', 'immutable must be true or false', where)
  }
  return {
    ...(Object.keys(metadata).length ? {metadata} : {}),
    type: (secret.type as string | undefined) ?? 'Opaque',
    ...(typeof secret.immutable === 'boolean' ? {immutable: secret.immutable} : {}),
  }
}

async function wrapAll(recipients: Recipient[], dataKey: Buffer, binding: Binding): Promise<RecipientEntry[]> {
  if (recipients.length === 0) throw new KsealError('ERR_USAGE', 'no certificate to seal for: pass --cert FILE|URL')
  return Promise.all(recipients.map((r) => r.wrap(dataKey, keyBinding(binding))))
}

/**
 * Seals a parsed v1 Secret (base64 `data`, string `stringData`) into a SealedSecret: one fresh data
 * key, wrapped once per recipient; every value encrypted as `data` bytes; the template keeps the
 * Secret's labels, annotations (not kubectl's last-applied copy), type and immutable.
 */
export async function sealSecret(secret: Record<string, unknown>, recipients: Recipient[], scope: Scope): Promise<SealedSecretObject> {
  const {meta, where} = checkSecret(secret)
  const name = meta.name as string
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : undefined
  if (scope !== 'cluster' && !namespace) {
    throw new KsealError(
      'ERR_INPUT',
      `a Secret needs metadata.namespace to be sealed with ${scope} scope (the values are bound to it), or use --scope cluster`,
      where,
    )
  }
  const values = secretValues(secret, where)
  const template = templateOf(secret, meta, where)
  const binding = bindingV2(scope, encryptedAsFor(scope, namespace ?? '', name))
  const dataKey = newDataKey()
  const keys = deriveKeys(dataKey, FORMAT_VERSION)
  const wrapped = await wrapAll(recipients, dataKey, binding)
  const encryptedData = dict<string>()
  for (const [k, bytes] of values) encryptedData[k] = encryptValue(keys, binding, 'data', k, bytes)
  const own: Pairs = Object.entries(encryptedData).map(([k, t]) => [k, tokenDigest(t)])
  const part: SealedPart = {
    recipients: wrapped,
    keys: Object.keys(encryptedData).sort(cmp),
    mac: partMac(keys, binding, 0, '', wrapped, own, []),
  }
  return {
    apiVersion: SEALED_API_VERSION,
    kind: SEALED_KIND,
    metadata: {name, ...(namespace ? {namespace} : {})},
    spec: {encryptedData, template, envelope: {version: FORMAT_VERSION, scope, parts: [part]}},
  }
}

/**
 * Adds or replaces values in an existing SealedSecret with the public key alone: the new values get
 * their own data key in a new envelope part, whose MAC also covers the digests of the tokens they
 * replace and the previous part's MAC. The template, scope and every other value stay as they were.
 */
export async function mergeIntoSealed(
  existing: SealedSecretObject,
  secret: Record<string, unknown>,
  recipients: Recipient[],
): Promise<SealedSecretObject> {
  const sealed = parseSealedSecret(existing)
  const at: Where = {secret: sealedLabel(sealed.metadata)}
  // The Secret may leave out its name and namespace: the values go where the SealedSecret is.
  const {meta, where} = checkSecret(secret, false)
  for (const f of ['name', 'namespace'] as const) {
    const want = sealed.metadata[f] ?? ''
    if (typeof meta[f] === 'string' && meta[f] !== '' && meta[f] !== want) {
      throw new KsealError(
        'ERR_USAGE',
        `the Secret's ${f} ${JSON.stringify(meta[f])} differs from the SealedSecret's ${JSON.stringify(want)}`,
        where,
      )
    }
  }
  let env: SealedEnvelope
  let binding: Binding
  try {
    env = parseSealedEnvelope(sealed.spec.envelope)
    binding = sealedBinding(sealed, env.scope, env.version as Version)
    planParts(env, sealed.spec.encryptedData)
  } catch (e) {
    throw isKsealError(e) ? e.at(at) : e
  }
  const values = secretValues(secret, where)
  if (values.size === 0) throw new KsealError('ERR_INPUT', 'has no data or stringData to merge', where)
  // The new part is in the chain's own format: the writer holds no private key to upgrade the rest
  // (kseal reseal does, through the controller).
  const dataKey = newDataKey()
  const keys = deriveKeys(dataKey, env.version as Version)
  const wrapped = await wrapAll(recipients, dataKey, binding)
  const encryptedData = dict(Object.entries(sealed.spec.encryptedData))
  const supersedes = dict<string>()
  const own: Pairs = []
  for (const [k, bytes] of values) {
    if (has(encryptedData, k)) supersedes[k] = tokenDigest(encryptedData[k])
    encryptedData[k] = encryptValue(keys, binding, 'data', k, bytes)
    own.push([k, tokenDigest(encryptedData[k])])
  }
  const index = env.parts.length
  if (index >= MAX_PARTS)
    throw new KsealError(
      'ERR_USAGE',
      `already has ${index} parts, the most a SealedSecret may have: re-seal it to compact the chain (kseal unseal | kseal seal)`,
      at,
    )
  const mac = partMac(keys, binding, index, env.parts[index - 1].mac, wrapped, own, Object.entries(supersedes))
  const part: SealedPart = {
    recipients: wrapped,
    keys: [...values.keys()].sort(cmp),
    ...(Object.keys(supersedes).length ? {supersedes} : {}),
    mac,
  }
  return {
    ...sealed,
    spec: {...sealed.spec, encryptedData, envelope: {version: env.version, scope: env.scope, parts: [...env.parts, part]}},
  }
}
