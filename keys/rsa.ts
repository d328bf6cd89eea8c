/**
 * Local RSA key pairs (`kseal keygen`, the controller's sealing keys): RSA-OAEP with SHA-256, the
 * Secret's binding as the OAEP label. Recipients are `rsa:PATH` to a certificate or public key PEM;
 * identities are PKCS#8 or PKCS#1 private key PEM files, refused when group or others can read them
 * (as ssh does).
 */
import crypto from 'node:crypto'
import {KsealError} from '../src/core/errors.js'
import {checkPrivateMode, isRsaKeyFile, keyPath, readKeyFile} from './keyfile.js'
import {RsaDecryptPool} from './rsa-pool.js'
import {type Backend, type BackendContext, type KeyBinding, type Identity, type Recipient, type RecipientEntry} from './types.js'

export const NAME = 'rsa'
const MIN_BITS = 2048

/** A key id: the first 8 bytes of SHA-256 over the public key's SubjectPublicKeyInfo, in hex. */
export function rsaKid(pub: crypto.KeyObject): string {
  return crypto
    .createHash('sha256')
    .update(pub.export({type: 'spki', format: 'der'}))
    .digest('hex')
    .slice(0, 16)
}

/** Reads a public key from a certificate, a public key or a private key PEM. */
export function publicKeyFromPem(pem: string, source: string): crypto.KeyObject {
  let key: crypto.KeyObject
  try {
    key = pem.includes('CERTIFICATE') ? new crypto.X509Certificate(pem).publicKey : crypto.createPublicKey(pem)
  } catch {
    throw new KsealError('ERR_CONFIG', `${source}: not an RSA certificate or public key (PEM)`)
  }
  checkRsa(key, source)
  return key
}

function checkRsa(key: crypto.KeyObject, source: string): void {
  if (key.asymmetricKeyType !== 'rsa') throw new KsealError('ERR_CONFIG', `${source}: not an RSA key (${key.asymmetricKeyType})`)
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < MIN_BITS) throw new KsealError('ERR_CONFIG', `${source}: RSA key of ${bits} bits is too small (at least ${MIN_BITS})`)
}

export class RsaRecipient implements Recipient {
  readonly backend = NAME
  readonly kid: string
  constructor(
    readonly key: crypto.KeyObject,
    readonly uri: string,
  ) {
    this.kid = rsaKid(key)
  }

  async wrap(dataKey: Uint8Array, binding: KeyBinding): Promise<RecipientEntry> {
    const wrapped = crypto.publicEncrypt(
      {key: this.key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: binding.label},
      dataKey,
    )
    return {backend: NAME, kid: this.kid, wrapped: wrapped.toString('base64')}
  }
}

export class RsaIdentity implements Identity {
  readonly backend = NAME
  readonly kid: string
  constructor(
    readonly key: crypto.KeyObject,
    readonly source: string,
    private readonly pool: RsaDecryptPool,
  ) {
    this.kid = rsaKid(crypto.createPublicKey(key))
  }

  recipient(): Recipient {
    return new RsaRecipient(crypto.createPublicKey(this.key), `${NAME}:${this.source}`)
  }

  async unwrap(entry: RecipientEntry, binding: KeyBinding): Promise<Uint8Array | null> {
    if (entry.backend !== NAME || entry.kid !== this.kid) return null
    const ct = Buffer.from(entry.wrapped, 'base64')
    const out = await this.pool.decrypt(this, ct, binding.label)
    if (out === null) {
      throw new KsealError(
        'ERR_DECRYPT',
        `cannot decrypt the data key with rsa key ${this.kid} (${this.source}): the recipient entry was altered or the Secret moved`,
      )
    }
    return out
  }
}

export class RsaBackend implements Backend {
  readonly name = NAME
  private readonly pool = new RsaDecryptPool()

  async recipient(rest: string, ctx: BackendContext): Promise<Recipient> {
    return new RsaRecipient(publicKeyFromPem(await readKeyFile(keyPath(rest, ctx)), rest), `${NAME}:${rest}`)
  }

  async identities(rest: string, ctx: BackendContext): Promise<Identity[]> {
    const file = keyPath(rest, ctx)
    return this.identitiesFromFile(file, await readKeyFile(file), ctx)
  }

  async identitiesFromFile(file: string, text: string, ctx?: BackendContext): Promise<Identity[]> {
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) {
      throw new KsealError(
        'ERR_CONFIG',
        `${file}: passphrase-protected private keys are not supported; store it unencrypted with mode 0600`,
      )
    }
    if (!isRsaKeyFile(text)) throw new KsealError('ERR_CONFIG', `${file}: not an RSA private key (PEM)`)
    await checkPrivateMode(file)
    let key: crypto.KeyObject
    try {
      key = crypto.createPrivateKey(text)
    } catch {
      throw new KsealError('ERR_CONFIG', `${file}: cannot read the RSA private key`)
    }
    checkRsa(key, file)
    // A bulk run's threads boot (about 30 ms here) while the files are still being read.
    if (ctx?.bulk) this.pool.prestart()
    return [new RsaIdentity(key, file, this.pool)]
  }

  async close(): Promise<void> {
    await this.pool.close()
  }
}

export const backend = (): Backend => new RsaBackend()

/**
 * A self-signed X.509 certificate for an RSA key pair, PEM: what recipients point at. node-forge
 * (imported here only) builds and signs it; node:crypto does every RSA operation.
 */
export async function selfSignedCert(privateKey: crypto.KeyObject, commonName: string, notBefore: Date, days: number): Promise<string> {
  const {default: forge} = await import('node-forge')
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(crypto.createPublicKey(privateKey).export({type: 'spki', format: 'pem'}) as string)
  cert.serialNumber = '01' + crypto.randomBytes(15).toString('hex')
  cert.validity.notBefore = notBefore
  cert.validity.notAfter = new Date(notBefore.getTime() + days * 86_400_000)
  const attrs = [
    {name: 'commonName', value: commonName},
    {name: 'organizationName', value: 'kseal'},
  ]
  cert.setSubject(attrs)
  cert.setIssuer(attrs)
  cert.setExtensions([
    {name: 'basicConstraints', cA: false},
    {name: 'keyUsage', keyEncipherment: true, dataEncipherment: true, digitalSignature: true},
  ])
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({type: 'pkcs1', format: 'pem'}) as string)
  cert.sign(forgeKey, forge.md.sha256.create())
  return forge.pki.certificateToPem(cert)
}
