/**
 * The controller's sealing keys as the cluster stores them — RSA key pairs kept as
 * `kubernetes.io/tls` Secrets in its own namespace, labelled `kseal.dev/sealing-key: active` — and the
 * trust root that vouches for them. The format is shared by the controller (which makes and loads
 * them, src/controller/keystore) and the CLI (`kseal cert --from-cluster-secret`, `kseal keys --import`).
 *
 * Trust: a label is not enough (anything that can create a Secret in the namespace, or a
 * SealedSecret unsealed into it, could set one). A key Secret is loaded only when it carries
 * `kseal.dev/key-mac`: an HMAC over its namespace, name, key id, creation time and certificate,
 * keyed with the trust root — 32 random bytes the controller keeps in the Secret `kseal-key-trust`
 * (label `kseal.dev/sealing-key: trust-root`) of the same namespace, which only the controller and
 * administrators can read. The controller signs the keys it generates; an administrator imports a
 * key with `kseal keys import` (which signs it with the root) or restores the namespace's keys
 * together with the trust root from a backup. When the controller creates the trust root (first
 * start, or the first start of a version with this check), it adopts the key Secrets already there,
 * logging each one. Keys dated in the future and RSA keys under 2048 bits are refused.
 */
import crypto from 'node:crypto'
import {promisify} from 'node:util'
import {rsaKid, selfSignedCert} from '../../keys/rsa.js'
import {CONTROLLER_NAME} from '../core/names.js'
import {macEqual} from '../envelope/envelope.js'
import type {Secret} from '../kube/api.js'

export const KEY_LABEL = 'kseal.dev/sealing-key'
export const KEY_LABEL_ACTIVE = 'active'
export const KEY_SELECTOR = `${KEY_LABEL}=${KEY_LABEL_ACTIVE}`
export const KEY_CREATED_ANNOTATION = 'kseal.dev/created-at'
export const KEY_ID_ANNOTATION = 'kseal.dev/key-id'
export const KEY_MAC_ANNOTATION = 'kseal.dev/key-mac'
/**
 * `decrypt` on an imported key that opens what was sealed to it but never seals (the default for
 * `kseal keys --import`); covered by the key's MAC, so it cannot be removed without the trust root.
 */
export const KEY_USE_ANNOTATION = 'kseal.dev/key-use'
const KEY_USE_DECRYPT = 'decrypt'
/** The Secret holding the trust root, and its label value. */
export const TRUST_SECRET = 'kseal-key-trust'
export const KEY_LABEL_TRUST = 'trust-root'
/** What the key reflector watches: every Secret with the label (keys and the trust root). */
export const KEY_WATCH_SELECTOR = KEY_LABEL
const MIN_KEY_BITS = 2048
/** A key's creation time may be this far ahead of the controller's clock (skew between replicas). */
const FUTURE_SKEW_MS = 5 * 60_000
/** Certificates the controller makes are valid this long; sealing keys are renewed far sooner. */
export const CERT_DAYS = 3650

/**
 * The MAC that makes a key Secret trusted: HMAC-SHA256(root, JSON [tag, namespace, name, kid, created,
 * SHA-256 of the certificate PEM]), with `"decrypt"` appended for a decrypt-only key.
 */
export function keyMac(
  root: Buffer,
  namespace: string,
  name: string,
  kid: string,
  created: string,
  certPem: string,
  decryptOnly = false,
): string {
  const cert = crypto.createHash('sha256').update(certPem, 'utf8').digest('base64')
  const fields = ['kseal/v1 sealing key', namespace, name, kid, created, cert]
  if (decryptOnly) fields.push(KEY_USE_DECRYPT)
  return crypto.createHmac('sha256', root).update(JSON.stringify(fields)).digest('base64')
}

/** A new trust root Secret (32 random bytes). */
export function trustSecret(namespace: string, root: Buffer = crypto.randomBytes(32)): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {name: TRUST_SECRET, namespace, labels: {[KEY_LABEL]: KEY_LABEL_TRUST}},
    data: {root: root.toString('base64')},
  }
}

/** The trust root in a Secret, when it is the trust root Secret. */
export function trustRootOf(s: Secret): Buffer | null {
  if (s.metadata?.name !== TRUST_SECRET || s.metadata?.labels?.[KEY_LABEL] !== KEY_LABEL_TRUST) return null
  const root = Buffer.from(s.data?.root ?? '', 'base64')
  return root.length === 32 ? root : null
}

const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'))

/**
 * Reads a key Secret and checks that it may be trusted: a PEM RSA key of at least 2048 bits and its
 * certificate, not dated in the future, signed with the trust root. Throws, saying why, otherwise.
 */
/** A key Secret that passed every check. */
export interface ParsedKeySecret {
  kid: string
  /** The Secret it is stored in. */
  secretName: string
  created: Date
  certPem: string
  key: crypto.KeyObject
  /** Opens what was sealed to it, never seals (`kseal.dev/key-use: decrypt`). */
  decryptOnly: boolean
}

export function parseKeySecret(s: Secret, root: Buffer, now: Date): ParsedKeySecret {
  const keyPem = b64(s.data?.['tls.key'])
  const certPem = b64(s.data?.['tls.crt'])
  if (!keyPem || !certPem) throw new Error('no tls.key or tls.crt')
  let key: crypto.KeyObject
  let cert: crypto.X509Certificate
  try {
    key = crypto.createPrivateKey(keyPem)
    cert = new crypto.X509Certificate(certPem)
  } catch {
    throw new Error('tls.key or tls.crt is not a PEM key or certificate')
  }
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`not an RSA key (${key.asymmetricKeyType})`)
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < MIN_KEY_BITS) throw new Error(`an RSA key of ${bits} bits is too small (at least ${MIN_KEY_BITS})`)
  const kid = rsaKid(crypto.createPublicKey(key))
  if (rsaKid(cert.publicKey) !== kid) throw new Error('tls.crt does not belong to tls.key')
  const ann = s.metadata?.annotations?.[KEY_CREATED_ANNOTATION]
  const createdRaw = ann ?? s.metadata?.creationTimestamp
  const created = createdRaw ? new Date(createdRaw as string | Date) : new Date(0)
  if (created.getTime() > now.getTime() + FUTURE_SKEW_MS)
    throw new Error(`dated in the future (${created.toISOString()}): refused, so it cannot outrank the real keys`)
  const use = s.metadata?.annotations?.[KEY_USE_ANNOTATION]
  if (use !== undefined && use !== KEY_USE_DECRYPT) throw new Error(`unknown ${KEY_USE_ANNOTATION} ${JSON.stringify(use)}`)
  const decryptOnly = use === KEY_USE_DECRYPT
  const mac = s.metadata?.annotations?.[KEY_MAC_ANNOTATION]
  const want = keyMac(root, s.metadata?.namespace ?? '', s.metadata?.name ?? '', kid, ann ?? '', certPem, decryptOnly)
  if (!mac || !macEqual(want, mac)) {
    throw new Error(
      `not trusted: no valid ${KEY_MAC_ANNOTATION} (the controller signs the keys it makes; import others with kseal keys import)`,
    )
  }
  return {
    kid,
    secretName: s.metadata?.name ?? '',
    created: Number.isNaN(created.getTime()) ? new Date(0) : created,
    certPem,
    key,
    decryptOnly,
  }
}

export interface GeneratedKey {
  kid: string
  keyPem: string
  certPem: string
}

/** A new RSA key pair (node:crypto) and its self-signed certificate (node-forge). */
export async function generateSealingKey(bits: number, now: Date, commonName = CONTROLLER_NAME): Promise<GeneratedKey> {
  const {privateKey} = await promisify(crypto.generateKeyPair)('rsa', {modulusLength: bits})
  const certPem = await selfSignedCert(privateKey, commonName, now, CERT_DAYS)
  return {kid: rsaKid(crypto.createPublicKey(privateKey)), keyPem: privateKey.export({type: 'pkcs8', format: 'pem'}) as string, certPem}
}

/** The Secret a key pair is stored in, signed with the trust root; `decryptOnly` for an imported key that must not seal. */
export function keySecret(
  namespace: string,
  k: {kid: string; keyPem: string; certPem: string},
  created: Date,
  root: Buffer,
  name = `kseal-key-${k.kid}`,
  decryptOnly = false,
): Secret {
  const use: Record<string, string> = decryptOnly ? {[KEY_USE_ANNOTATION]: KEY_USE_DECRYPT} : {}
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name,
      namespace,
      labels: {[KEY_LABEL]: KEY_LABEL_ACTIVE},
      annotations: {
        [KEY_CREATED_ANNOTATION]: created.toISOString(),
        [KEY_ID_ANNOTATION]: k.kid,
        ...use,
        [KEY_MAC_ANNOTATION]: keyMac(root, namespace, name, k.kid, created.toISOString(), k.certPem, decryptOnly),
      },
    },
    data: {'tls.crt': Buffer.from(k.certPem).toString('base64'), 'tls.key': Buffer.from(k.keyPem).toString('base64')},
  }
}
