/**
 * Reading Bitnami sealed-secrets (`bitnami.com/v1alpha1` SealedSecret) with the controller's private
 * key, so `kseal unseal` is a migration path: `kseal unseal --key backup.yaml old.yaml | kseal seal`.
 *
 * Their format, per value: base64( u16be(len(rsaCt)) ‖ rsaCt ‖ AES-256-GCM(ciphertext ‖ tag) ), where
 * rsaCt is RSA-OAEP-SHA256 of a fresh 32-byte session key with the label `namespace/name` (strict),
 * `namespace` (namespace-wide) or `` (cluster-wide), and GCM uses an all-zero 12-byte nonce and no
 * AAD. Values carry no key id, so every key is tried (the last one that worked first): one RSA
 * operation per value at best, one per value and key at worst — what kseal's format avoids.
 */
import crypto from 'node:crypto'
import {KsealError, type Where} from '../core/errors.js'
import {isObj, type Obj} from '../core/guards.js'
import {secretObject} from '../manifest/secrets.js'

export const BITNAMI_API_VERSION = 'bitnami.com/v1alpha1'
const CLUSTER_WIDE = 'sealedsecrets.bitnami.com/cluster-wide'
const NAMESPACE_WIDE = 'sealedsecrets.bitnami.com/namespace-wide'

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

function hybridDecrypt(keys: crypto.KeyObject[], order: number[], b64: string, label: Buffer): Buffer | null {
  const raw = Buffer.from(b64, 'base64')
  if (raw.length < 2) throw new KsealError('ERR_INTEGRITY', 'not a sealed-secrets value (truncated)')
  const n = raw.readUInt16BE(0)
  if (raw.length < 2 + n + 16) throw new KsealError('ERR_INTEGRITY', 'not a sealed-secrets value (truncated)')
  const rsaCt = raw.subarray(2, 2 + n)
  for (let o = 0; o < order.length; o++) {
    const i = order[o]
    let sessionKey: Buffer
    try {
      sessionKey = crypto.privateDecrypt(
        {key: keys[i], padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label},
        rsaCt,
      )
    } catch {
      continue
    }
    // The key that worked goes first for the next value.
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

/** Opens a Bitnami SealedSecret with any of the given RSA private keys and returns the v1 Secret it describes. */
export function unsealBitnami(raw: unknown, keys: crypto.KeyObject[]): Record<string, unknown> {
  if (!isObj(raw) || !isBitnamiSealedSecret(raw)) throw new KsealError('ERR_INPUT', 'not a bitnami.com/v1alpha1 SealedSecret')
  const meta = isObj(raw.metadata) ? raw.metadata : {}
  const name = typeof meta.name === 'string' ? meta.name : ''
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : ''
  const where: Where = {secret: (namespace ? `${namespace}/` : '') + (name || '(unnamed)')}
  const spec = isObj(raw.spec) ? raw.spec : null
  if (!spec) throw new KsealError('ERR_INPUT', 'a SealedSecret needs a spec', where)
  if (spec.data !== undefined && spec.data !== null && spec.encryptedData === undefined) {
    throw new KsealError('ERR_INPUT', 'uses the legacy spec.data format (sealed-secrets < 0.7), which kseal does not read', where)
  }
  const template = isObj(spec.template) ? spec.template : {}
  if (template.data !== undefined && template.data !== null) {
    throw new KsealError('ERR_INPUT', 'uses spec.template.data (templated values), which kseal does not read', where)
  }
  const enc = spec.encryptedData ?? {}
  if (!isObj(enc) || Object.values(enc).some((v) => typeof v !== 'string')) {
    throw new KsealError('ERR_INPUT', 'spec.encryptedData must be a mapping of strings', where)
  }
  const lbl = bitnamiLabel(meta)
  if (!name) throw new KsealError('ERR_INPUT', 'a SealedSecret needs metadata.name', where)
  if (!namespace && lbl !== '') throw new KsealError('ERR_INPUT', 'needs metadata.namespace: its values are bound to it', where)
  if (keys.length === 0)
    throw new KsealError('ERR_NO_KEY', 'no RSA private key to open a sealed-secrets SealedSecret with (pass --key)', where)
  const label = Buffer.from(lbl, 'utf8')
  const order = keys.map((_, i) => i)
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries(enc as Record<string, string>)) {
    const at = {...where, key: `encryptedData.${k}`}
    let plain: Buffer | null
    try {
      plain = hybridDecrypt(keys, order, v, label)
    } catch (e) {
      throw (e as KsealError).at(at)
    }
    if (plain === null) {
      throw new KsealError(
        'ERR_NO_KEY',
        `none of the ${keys.length} key(s) given opens this value (another controller's key, or the SealedSecret was moved from another ${lbl === '' ? 'cluster' : lbl.includes('/') ? 'name or namespace' : 'namespace'})`,
        at,
      )
    }
    data[k] = plain.toString('base64')
  }
  const tmeta = isObj(template.metadata) ? template.metadata : {}
  return secretObject(
    name,
    namespace,
    {
      labels: isObj(tmeta.labels) ? (tmeta.labels as Record<string, string>) : undefined,
      annotations: isObj(tmeta.annotations) ? (tmeta.annotations as Record<string, string>) : undefined,
      type: typeof template.type === 'string' ? template.type : undefined,
      immutable: typeof template.immutable === 'boolean' ? template.immutable : undefined,
    },
    data,
  )
}
