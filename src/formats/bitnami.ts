/**
 * Reading Bitnami sealed-secrets (`bitnami.com/v1alpha1` SealedSecret) with the controller's private
 * key, so `kseal unseal` is a migration path: `kseal unseal --key backup.yaml old.yaml | kseal seal`.
 *
 * Their format, per value: base64( u16be(len(rsaCt)) ‖ rsaCt ‖ AES-256-GCM(ciphertext ‖ tag) ), where
 * rsaCt is RSA-OAEP-SHA256 of a fresh 32-byte session key with the label `namespace/name` (strict),
 * `namespace` (namespace-wide) or `` (cluster-wide), and GCM uses an all-zero 12-byte nonce and no
 * AAD. Values carry no key id, so every key is tried (the last one that worked first): one RSA
 * operation per value at best, one per value and key at worst — what kseal's format avoids.
 *
 * `spec.template.data` holds templated values, rendered as sealed-secrets renders them: Go templates
 * over the decrypted values and the other entries' own text (a decrypted value wins a name clash, and
 * its key keeps the decrypted value); a null entry drops that key. kseal runs them in its own template
 * language (src/external/template: Go's syntax, the builtins and the sprig functions templates use, no
 * environment, clock or randomness), bounded in steps and output; anything else is refused by name and
 * position before any private-key work. The pre-0.7 `spec.data` format is refused by name.
 */
import crypto from 'node:crypto'
import {KsealError, type Where} from '../core/errors.js'
import {isObj, type Obj} from '../core/guards.js'
import {isSecretKey} from '../external/fields.js'
import {compileTemplate, DEFAULT_LIMITS, type Template} from '../external/template/index.js'
import {secretObject, type SecretTemplate} from '../manifest/secrets.js'
import {stringMap} from '../sealed/parse.js'

export const BITNAMI_API_VERSION = 'bitnami.com/v1alpha1'
const CLUSTER_WIDE = 'sealedsecrets.bitnami.com/cluster-wide'
const NAMESPACE_WIDE = 'sealedsecrets.bitnami.com/namespace-wide'
/** The label on the sealed-secrets controller's key Secrets (`active`, or `compromised`). */
export const BITNAMI_KEY_LABEL = 'sealedsecrets.bitnami.com/sealed-secrets-key'

export function isBitnamiSealedSecret(o: unknown): boolean {
  return isObj(o) && o.kind === 'SealedSecret' && o.apiVersion === BITNAMI_API_VERSION
}

/** The OAEP label sealed-secrets derives from the SealedSecret's own metadata (its `labelFor`). */
export function bitnamiLabel(meta: Obj): string {
  const ann = isObj(meta.annotations) ? meta.annotations : {}
  const ns = typeof meta.namespace === 'string' ? meta.namespace : ''
  if (ann[CLUSTER_WIDE] === 'true') return ''
  if (ann[NAMESPACE_WIDE] === 'true') return ns
  return `${ns}/${typeof meta.name === 'string' ? meta.name : ''}`
}

/** sealed-secrets' HybridEncrypt of one value to a public key, with the label of the SealedSecret's scope. */
export function sealBitnamiValue(publicKey: crypto.KeyObject, label: string, plain: Buffer): string {
  const sessionKey = crypto.randomBytes(32)
  const rsaCt = crypto.publicEncrypt(
    {key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(label, 'utf8')},
    sessionKey,
  )
  const c = crypto.createCipheriv('aes-256-gcm', sessionKey, Buffer.alloc(12))
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
  const len = Buffer.alloc(2)
  len.writeUInt16BE(rsaCt.length)
  return Buffer.concat([len, rsaCt, body]).toString('base64')
}

/** One RSA-OAEP private decryption the value loop needs: which key, the ciphertext and the label. */
export interface RsaAsk {
  keyIndex: number
  ct: Buffer
  label: Buffer
}

/** sealed-secrets' RSA step with a key object, here and now: the session key, or null when the key does not open it. */
export function oaepDecrypt(key: crypto.KeyObject, ct: Buffer, label: Buffer): Buffer | null {
  try {
    return crypto.privateDecrypt({key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label}, ct)
  } catch {
    return null
  }
}

/**
 * sealed-secrets' HybridDecrypt of one value, as steps: it yields each RSA decryption it needs (keys
 * in `order`, within the budget) and is answered with the session key or null; the key that worked
 * goes first for the next value. The same steps run inline (offline) or on the controller's pool.
 */
function* hybridDecrypt(
  order: number[],
  b64: string,
  label: Buffer,
  budget: {left: number; onRsa?: () => void; onOpened?: (keyIndex: number) => void},
): Generator<RsaAsk, Buffer | null, Buffer | null> {
  const raw = Buffer.from(b64, 'base64')
  if (raw.length < 2) throw new KsealError('ERR_INTEGRITY', 'not a sealed-secrets value (truncated)')
  const n = raw.readUInt16BE(0)
  if (raw.length < 2 + n + 16) throw new KsealError('ERR_INTEGRITY', 'not a sealed-secrets value (truncated)')
  const rsaCt = raw.subarray(2, 2 + n)
  for (let o = 0; o < order.length; o++) {
    const i = order[o]
    if (budget.left <= 0) throw new KsealError('ERR_INPUT', 'needs more private-key operations than one SealedSecret may cause')
    budget.left--
    budget.onRsa?.()
    const sessionKey = yield {keyIndex: i, ct: rsaCt, label}
    if (!sessionKey) continue
    budget.onOpened?.(i)
    order.splice(o, 1)
    order.unshift(i)
    const body = raw.subarray(2 + n)
    try {
      const d = crypto.createDecipheriv('aes-256-gcm', sessionKey, Buffer.alloc(12))
      d.setAuthTag(body.subarray(body.length - 16))
      return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()])
    } catch {
      throw new KsealError('ERR_INTEGRITY', 'cannot decrypt: the sealed value was altered')
    }
  }
  return null
}

/** A Bitnami SealedSecret's scope, from the annotations on its own metadata (what sealed-secrets' `labelFor` reads). */
export type BitnamiScope = 'strict' | 'namespace-wide' | 'cluster-wide'

/** Largest decrypted Secret (all values, templates' output included): the API server's own limit. */
export const MAX_BITNAMI_DATA = 1024 * 1024
const NO_VALUE = '<no value>'
/** Most values (encryptedData entries plus template.data entries) one SealedSecret may hold. */
const MAX_BITNAMI_VALUES = 256

/** A checked Bitnami SealedSecret: everything that can be refused without a private key has been. */
export interface BitnamiSealed {
  name: string
  namespace: string
  scope: BitnamiScope
  /** The OAEP label its values were sealed with. */
  label: string
  encryptedData: Record<string, string>
  /** `spec.template.data`: key, compiled template and its text, or nulls (the key is dropped from the Secret). */
  templates: [string, Template | null, string | null][]
  template: SecretTemplate
  where: Where
}

const scopeOf = (lbl: string): BitnamiScope => (lbl === '' ? 'cluster-wide' : lbl.includes('/') ? 'strict' : 'namespace-wide')

/**
 * Checks a Bitnami SealedSecret's shape and compiles its `spec.template.data` templates (refusing a
 * function or construct kseal's template language lacks, with its line and column), without a key.
 */
export function parseBitnami(raw: unknown): BitnamiSealed {
  if (!isObj(raw) || !isBitnamiSealedSecret(raw)) throw new KsealError('ERR_INPUT', 'not a bitnami.com/v1alpha1 SealedSecret')
  const meta = isObj(raw.metadata) ? raw.metadata : {}
  const name = typeof meta.name === 'string' ? meta.name : ''
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : ''
  const where: Where = {secret: (namespace ? `${namespace}/` : '') + (name || '(unnamed)')}
  const spec = isObj(raw.spec) ? raw.spec : null
  if (!spec) throw new KsealError('ERR_INPUT', 'a SealedSecret needs a spec', where)
  if (spec.data !== undefined && spec.data !== null) {
    throw new KsealError(
      'ERR_INPUT',
      'a pre-0.7 sealed-secrets SealedSecret (spec.data, the whole Secret in one value), which kseal does not read; convert it with kubeseal >= 0.7 first (kubeseal --re-encrypt)',
      where,
    )
  }
  const template = spec.template === undefined || spec.template === null ? {} : spec.template
  if (!isObj(template)) throw new KsealError('ERR_INPUT', 'spec.template must be a mapping', where)
  const enc = stringMap(spec.encryptedData, 'spec.encryptedData', where) ?? {}
  const lbl = bitnamiLabel(meta)
  if (!name) throw new KsealError('ERR_INPUT', 'a SealedSecret needs metadata.name', where)
  if (!namespace && lbl !== '') throw new KsealError('ERR_INPUT', 'needs metadata.namespace: its values are bound to it', where)
  const tdata = template.data === undefined || template.data === null ? {} : template.data
  if (!isObj(tdata) || Object.values(tdata).some((x) => typeof x !== 'string' && x !== null))
    throw new KsealError('ERR_INPUT', 'spec.template.data must be a mapping of strings (templates) or nulls', where)
  if (Object.keys(enc).length + Object.keys(tdata).length > MAX_BITNAMI_VALUES)
    throw new KsealError('ERR_INPUT', `more than ${MAX_BITNAMI_VALUES} values (encryptedData and template.data together)`, where)
  for (const k of [...Object.keys(enc), ...Object.keys(tdata)]) {
    if (!isSecretKey(k))
      throw new KsealError('ERR_INPUT', `${JSON.stringify(k.slice(0, 80))} is not a valid Secret key ([-._a-zA-Z0-9]+)`, where)
  }
  const templates: [string, Template | null, string | null][] = []
  for (const [k, text] of Object.entries(tdata)) {
    try {
      templates.push(text === null ? [k, null, null] : [k, compileTemplate(text as string, `spec.template.data.${k}`), text as string])
    } catch (e) {
      throw (e as KsealError).at(where)
    }
  }
  const tmeta = template.metadata === undefined || template.metadata === null ? {} : template.metadata
  if (!isObj(tmeta)) throw new KsealError('ERR_INPUT', 'spec.template.metadata must be a mapping', where)
  if (template.type !== undefined && template.type !== null && typeof template.type !== 'string')
    throw new KsealError('ERR_INPUT', 'spec.template.type must be a string', where)
  if (template.immutable !== undefined && template.immutable !== null && typeof template.immutable !== 'boolean')
    throw new KsealError('ERR_INPUT', 'spec.template.immutable must be a boolean', where)
  return {
    name,
    namespace,
    scope: scopeOf(lbl),
    label: lbl,
    encryptedData: enc,
    templates,
    template: {
      labels: stringMap(tmeta.labels, 'spec.template.metadata.labels', where),
      annotations: stringMap(tmeta.annotations, 'spec.template.metadata.annotations', where),
      type: typeof template.type === 'string' ? template.type : undefined,
      immutable: typeof template.immutable === 'boolean' ? template.immutable : undefined,
    },
    where,
  }
}

/** Bounds on the private-key work one SealedSecret may cause (the controller's; none offline). */
export interface BitnamiWork {
  /** Most RSA private-key operations; beyond it, ERR_INPUT before the next one. */
  maxRsaOps?: number
  /** Called once per RSA private-key operation (metrics). */
  onRsa?: () => void
  /** Called with the index (in `keys`) of each key that opened a value. */
  onOpened?: (keyIndex: number) => void
}

/** The steps of decrypting a checked Bitnami SealedSecret's `encryptedData` with `keyCount` keys: key → bytes. */
function* valueSteps(s: BitnamiSealed, keyCount: number, work: BitnamiWork): Generator<RsaAsk, Map<string, Buffer>, Buffer | null> {
  const {where, label: lbl} = s
  if (keyCount === 0)
    throw new KsealError('ERR_NO_KEY', 'no RSA private key to open a sealed-secrets SealedSecret with (pass --key)', where)
  const label = Buffer.from(lbl, 'utf8')
  const order = Array.from({length: keyCount}, (_, i) => i)
  const plain = new Map<string, Buffer>()
  const budget = {left: work.maxRsaOps ?? Infinity, onRsa: work.onRsa, onOpened: work.onOpened}
  for (const [k, v] of Object.entries(s.encryptedData)) {
    const at = {...where, key: `encryptedData.${k}`}
    let p: Buffer | null
    try {
      p = yield* hybridDecrypt(order, v, label, budget)
    } catch (e) {
      throw (e as KsealError).at(at)
    }
    if (p === null) {
      throw new KsealError(
        'ERR_NO_KEY',
        `none of the ${keyCount} key(s) given opens this value (another controller's key, or the SealedSecret was moved from another ${lbl === '' ? 'cluster' : lbl.includes('/') ? 'name or namespace' : 'namespace'})`,
        at,
      )
    }
    plain.set(k, p)
  }
  return plain
}

/** Decrypts a checked Bitnami SealedSecret's `encryptedData` with any of the given RSA private keys, inline: key → bytes. */
function openBitnamiValues(s: BitnamiSealed, keys: crypto.KeyObject[], work: BitnamiWork = {}): Map<string, Buffer> {
  const steps = valueSteps(s, keys.length, work)
  let r = steps.next()
  while (!r.done) r = steps.next(oaepDecrypt(keys[r.value.keyIndex], r.value.ct, r.value.label))
  return r.value
}

/**
 * The same, with each RSA decryption made by `decrypt` (the controller's worker pool: the event loop
 * stays free) for the key at that index.
 */
export async function openBitnamiValuesWith(
  s: BitnamiSealed,
  keyCount: number,
  decrypt: (ask: RsaAsk) => Promise<Buffer | null>,
  work: BitnamiWork = {},
): Promise<Map<string, Buffer>> {
  const steps = valueSteps(s, keyCount, work)
  let r = steps.next()
  while (!r.done) r = steps.next(await decrypt(r.value))
  return r.value
}

/**
 * Opens a checked Bitnami SealedSecret with any of the given RSA private keys and returns the v1 Secret
 * sealed-secrets would write (without its ownerReference): the template's labels, annotations, type and
 * immutable, the decrypted values, then each `spec.template.data` entry rendered over them (a null one
 * drops that key).
 */
export function openBitnami(s: BitnamiSealed, keys: crypto.KeyObject[], work: BitnamiWork = {}): Record<string, unknown> {
  return renderBitnami(s, openBitnamiValues(s, keys, work))
}

/** The v1 Secret a checked Bitnami SealedSecret describes, from its decrypted values (templates rendered over them). */
export function renderBitnami(s: BitnamiSealed, plain: Map<string, Buffer>): Record<string, unknown> {
  const {where} = s
  // What templates see: the decrypted values, then each template's own text under its key unless a
  // decrypted value has that key (sealed-secrets >= 0.27: a plaintext entry never shadows a secret one).
  const context = new Map(plain)
  for (const [k, , text] of s.templates) if (text !== null && !context.has(k)) context.set(k, Buffer.from(text, 'utf8'))
  const out = new Map(plain)
  let size = [...plain.values()].reduce((n, b) => n + b.length, 0)
  for (const [k, t] of s.templates) {
    if (t === null) {
      out.delete(k)
      continue
    }
    let rendered: Buffer
    try {
      rendered = t.execute(context, {...DEFAULT_LIMITS, maxOutput: MAX_BITNAMI_DATA})
    } catch (e) {
      throw (e as KsealError).at(where)
    }
    // Go prints a missing map entry as "<no value>" (kseal's `index` of a missing key too), where
    // sealed-secrets' map of strings gives "": refused rather than written either way.
    if (
      rendered.includes(NO_VALUE) &&
      !s.templates.some(([, , text]) => text?.includes(NO_VALUE)) &&
      ![...context.values()].some((v) => v.includes(NO_VALUE))
    )
      throw new KsealError('ERR_INPUT', `renders "<no value>": it names a key that neither encryptedData nor template.data has`, {
        ...where,
        key: `template.data.${k}`,
      })
    // A key encryptedData holds keeps its decrypted value; the template still has to render.
    if (plain.has(k)) continue
    size += rendered.length
    if (size > MAX_BITNAMI_DATA)
      throw new KsealError('ERR_INPUT', `the Secret's values are larger than ${MAX_BITNAMI_DATA} bytes`, {
        ...where,
        key: `template.data.${k}`,
      })
    out.set(k, rendered)
  }
  const data: Record<string, string> = {}
  for (const [k, v] of out) data[k] = v.toString('base64')
  return secretObject(s.name, s.namespace, s.template, data)
}

/** Opens a Bitnami SealedSecret with any of the given RSA private keys and returns the v1 Secret it describes. */
export function unsealBitnami(raw: unknown, keys: crypto.KeyObject[]): Record<string, unknown> {
  return openBitnami(parseBitnami(raw), keys)
}
