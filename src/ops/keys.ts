/**
 * `kseal keys`: the keys kseal can find locally, as decrypt would find them — key id, backend, where
 * it is, and, for RSA keys with their certificate beside them, when it was made and when it expires;
 * and the in-cluster controller's keys (`--controller`). `--import` is import-key.ts.
 */
import crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import type {Identity} from '../../keys/types.js'
import type {Keyring} from '../keyring/keyring.js'

export interface KeyInfo {
  kid: string
  backend: string
  source: string
  created?: string
  expires?: string
}

/** A certificate next to a key file (same base name, .crt/.pem/.cert) whose public key matches. */
async function siblingCert(ident: Identity): Promise<crypto.X509Certificate | undefined> {
  if (!ident.recipient) return undefined
  const base = ident.source.replace(/\.(key|pem)$/, '')
  for (const ext of ['.crt', '.cert', '.pem']) {
    const f = base + ext
    if (f === ident.source) continue
    const text = await fs.readFile(f, 'utf8').catch(() => null)
    if (!text?.includes('CERTIFICATE')) continue
    try {
      const cert = new crypto.X509Certificate(text)
      if ((await certKid(cert)) === ident.kid) return cert
    } catch {
      // not a certificate we can read: no dates
    }
  }
  return undefined
}

async function certKid(cert: crypto.X509Certificate): Promise<string> {
  const {rsaKid} = await import('../../keys/rsa.js')
  return rsaKid(cert.publicKey)
}

export async function listKeys(keyring: Keyring): Promise<KeyInfo[]> {
  const out: KeyInfo[] = []
  for (const ident of await keyring.all()) {
    const info: KeyInfo = {kid: ident.kid, backend: ident.backend, source: ident.source}
    const cert = await siblingCert(ident)
    if (cert) {
      info.created = new Date(cert.validFrom).toISOString()
      info.expires = new Date(cert.validTo).toISOString()
    } else {
      const st = await fs.stat(ident.source).catch(() => null)
      if (st) info.created = st.mtime.toISOString()
    }
    out.push(info)
  }
  return out.sort((a, b) => (a.created ?? '').localeCompare(b.created ?? '') || a.source.localeCompare(b.source))
}

/** One of the in-cluster controller's sealing keys, as its /v1/keys lists it. */
export interface ControllerKeyInfo {
  kid: string
  created: string
  /** The key the controller seals with now (the newest, unless --key-cutoff retired it). */
  active: boolean
  /** Created before the controller's --key-cutoff: still opens, no longer seals. */
  retired?: boolean
  /** SealedSecrets in the cluster still sealed to it. */
  sealedSecrets?: number
  /** An imported key that opens and never seals. */
  decryptOnly?: boolean
}

/** The unsealer's keys from its /v1/keys (through the service proxy or a URL). */
export async function listControllerKeys(target: import('../client/endpoints.js').ControllerTarget): Promise<ControllerKeyInfo[]> {
  const {controllerRequest, describeTarget, errorDetail, statusHint} = await import('../client/endpoints.js')
  const {KsealError} = await import('../core/errors.js')
  const r = await controllerRequest(target, '/v1/keys', {accept: 'application/json'})
  if (r.status !== 200) {
    const detail = errorDetail(r.body)
    throw new KsealError(
      'ERR_BACKEND',
      `cannot list the keys of ${describeTarget(target)}: HTTP ${r.status}${detail ? `: ${detail}` : ''}${statusHint(r.status)}`,
    )
  }
  let keys: unknown
  try {
    keys = JSON.parse(r.body)
  } catch {
    keys = null
  }
  if (
    !Array.isArray(keys) ||
    keys.some((k) => typeof k?.kid !== 'string' || typeof k?.created !== 'string' || typeof k?.active !== 'boolean')
  ) {
    throw new KsealError('ERR_BACKEND', `${describeTarget(target)} answered /v1/keys with something that is not a key list`)
  }
  return (keys as ControllerKeyInfo[]).map((k) => ({
    kid: k.kid,
    created: k.created,
    active: k.active,
    ...(typeof k.retired === 'boolean' ? {retired: k.retired} : {}),
    ...(typeof k.sealedSecrets === 'number' ? {sealedSecrets: k.sealedSecrets} : {}),
    ...(k.decryptOnly === true ? {decryptOnly: true} : {}),
  }))
}
