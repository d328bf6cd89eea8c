/**
 * `kseal unseal`: SealedSecrets (kseal's and Bitnami's) opened offline with the controller's private
 * keys, every other document as it was.
 *
 * The private keys `--key` accepts: a PEM private key file (PKCS#1 or PKCS#8), `rsa:PATH`, a directory
 * of those, or what an operator backs up from the cluster — a Secret manifest holding `tls.key` (a
 * `kubernetes.io/tls` Secret, or the List `kubectl get secret -o yaml` writes). Files holding private
 * keys must not be readable by group or others, whatever their form.
 */
import type crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import path from 'node:path'
import {isMap, isSeq, parseAllDocuments} from 'yaml'
import {type Backends, splitUri} from '../../keys/index.js'
import type {Identity} from '../../keys/types.js'
import {readKeyFile} from '../../keys/keyfile.js'
import {ioError, KsealError} from '../core/errors.js'
import {filesIn} from '../core/files.js'
import {isObj, type Obj} from '../core/guards.js'
import {type Attempt, type Unwrap, unwrapWith} from '../keyring/keyring.js'
import {unsealBitnami, isBitnamiSealedSecret} from '../formats/bitnami.js'
import type {ObjectStep} from '../manifest/objects.js'
import {parseSealedSecret} from '../sealed/parse.js'
import {isKsealSealedSecret} from '../sealed/types.js'
import {unsealSealedSecret} from '../sealed/unseal.js'
import {KUBE_YAML} from '../manifest/kubeyaml.js'
import {isCoreSecret} from '../manifest/parse.js'

/** The keys `--key` named: an unwrap over exactly those (no other key source), and the RSA keys among them. */
export interface UnsealKeyring {
  identities: Identity[]
  /** The RSA private keys among them, for formats without key ids (Bitnami sealed-secrets). */
  rsaKeys: crypto.KeyObject[]
  /** Unwraps a data key with the identity whose key id an entry names. */
  unwrap: Unwrap
}

/** A Secret's `tls.key` (and `tls.crt`, when it has one) in a manifest. */
export interface TlsSecret {
  /** `namespace/name`, or the name alone. */
  name: string
  key: string
  cert?: string
}

/** Every Secret (also inside Lists) holding `tls.key` in a manifest text; none when it is not one. */
export function tlsSecretsFromManifest(text: string): TlsSecret[] {
  let docs
  try {
    docs = parseAllDocuments(text, KUBE_YAML)
  } catch {
    return []
  }
  if (!Array.isArray(docs)) return []
  const out: TlsSecret[] = []
  const field = (o: Obj, k: string): string | undefined => {
    const sd = isObj(o.stringData) ? o.stringData[k] : undefined
    if (typeof sd === 'string') return sd
    const d = isObj(o.data) ? o.data[k] : undefined
    return typeof d === 'string' ? Buffer.from(d.replace(/\s+/g, ''), 'base64').toString('utf8') : undefined
  }
  const visit = (o: unknown) => {
    if (!isObj(o)) return
    if (isCoreSecret(o.kind, o.apiVersion)) {
      const key = field(o, 'tls.key')
      const meta = isObj(o.metadata) ? o.metadata : {}
      const name = [meta.namespace, meta.name].filter((x) => typeof x === 'string' && x).join('/')
      if (key !== undefined) out.push({name, key, cert: field(o, 'tls.crt')})
      return
    }
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) o.items.forEach(visit)
  }
  for (const doc of docs) {
    if (doc.errors.length || !(isMap(doc.contents) || isSeq(doc.contents))) continue
    visit(doc.toJS({maxAliasCount: 100}))
  }
  return out
}

export async function loadUnsealKeyring(specs: string[], backends: Backends): Promise<UnsealKeyring> {
  const cwd = backends.ctx.cwd
  const identities: Identity[] = []

  const fromFile = async (file: string, shown: string, explicit: boolean): Promise<void> => {
    const text = await readKeyFile(file)
    if (backends.sniff(text)) {
      identities.push(...(await backends.identitiesFromFile(file, text)))
      return
    }
    const pems = tlsSecretsFromManifest(text).map((s) => s.key)
    if (pems.length) {
      const rsa = await backends.get('rsa')
      for (const pem of pems) identities.push(...(await rsa.identitiesFromFile!(file, pem, backends.ctx)))
      return
    }
    if (explicit)
      throw new KsealError('ERR_CONFIG', `${shown}: no private key found (expected a PEM private key, or a Secret manifest with tls.key)`)
  }

  for (const spec of specs) {
    const uri = splitUri(spec)
    if (uri && uri.scheme !== 'rsa') {
      identities.push(...(await (await backends.get(uri.scheme)).identities(uri.rest, backends.ctx)))
      continue
    }
    const rel = uri ? uri.rest : spec
    const file = path.resolve(cwd, rel)
    let st
    try {
      st = await fs.stat(file)
    } catch (e) {
      throw ioError(e, rel)
    }
    if (!st.isDirectory()) {
      await fromFile(file, rel, true)
      continue
    }
    const files = await filesIn(file, {skipHidden: true}).catch((e) => {
      throw ioError(e, rel)
    })
    for (const f of files) await fromFile(f, path.join(rel, path.basename(f)), false)
  }
  // The same key given twice (a key file and its backup manifest) counts once.
  const seen = new Set<string>()
  const unique = identities.filter((id) => {
    const k = `${id.backend}:${id.kid}`
    if (id.kid !== '*' && seen.has(k)) return false
    seen.add(k)
    return true
  })
  const rsaKeys = unique.flatMap((id) => (id.backend === 'rsa' && 'key' in id ? [(id as Identity & {key: crypto.KeyObject}).key] : []))

  return {
    identities: unique,
    rsaKeys,
    async unwrap(entries, binding) {
      const attempt: Attempt = {failure: null}
      const got = await unwrapWith(entries, unique, binding, attempt)
      if (got) return got
      if (attempt.failure) throw attempt.failure
      const wanted = entries.map((e) => `${e.backend}:${e.kid}`).join(', ')
      const held = unique.map((id) => `${id.backend}:${id.kid}`).join(', ') || 'none'
      throw new KsealError('ERR_NO_KEY', `no key for this SealedSecret: it is sealed for ${wanted} (--key holds ${held})`)
    },
  }
}

/** The step that opens each SealedSecret of a stream (kseal's with its key ids, Bitnami's by trying the RSA keys). */
export function unsealStep(keys: UnsealKeyring): ObjectStep {
  return async (o) => {
    if (isKsealSealedSecret(o)) return (await unsealSealedSecret(parseSealedSecret(o), keys.unwrap)).secret
    if (isBitnamiSealedSecret(o)) return unsealBitnami(o, keys.rsaKeys)
    return null
  }
}
