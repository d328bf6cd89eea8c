/**
 * `kseal keys`: the keys kseal can find locally, as decrypt would find them — key id, backend, where
 * it is, and, for RSA keys with their certificate beside them, when it was made and when it expires.
 */
import crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import type {Identity} from '../keys/types.js'
import type {Keyring} from './keyring.js'

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
  const {rsaKid} = await import('../keys/rsa.js')
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
