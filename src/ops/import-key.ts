/**
 * `kseal keys --import`: the administrator's explicit path for key pairs the controller did not make
 * (a key from another cluster, a restored backup whose trust root is gone, the sealed-secrets
 * controller's keys). Needs read access to the trust root and create on Secrets in the key namespace.
 *
 * An imported key opens what was sealed to it and never seals (`kseal.dev/key-use: decrypt`, covered
 * by its MAC), unless the administrator asks with `active`: then it is dated now, so it is the newest
 * key and the one the controller seals with until its next renewal.
 */
import crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import {readKeyFile} from '../../keys/keyfile.js'
import {rsaKid, selfSignedCert} from '../../keys/rsa.js'
import {KsealError} from '../core/errors.js'
import {BITNAMI_KEY_LABEL} from '../formats/bitnami.js'
import {clusterApi, type ClusterApi} from '../kube/api.js'
import {loadKubeConfig} from '../kube/config.js'
import {describeError, isAlreadyExists} from '../kube/errors.js'
import {CERT_DAYS, keySecret, parseKeySecret, TRUST_SECRET, trustRootOf} from '../sealed/sealing-key.js'
import {tlsSecretsFromManifest} from './unseal.js'

export interface ImportOptions {
  /** The controller's key namespace. */
  namespace: string
  kubeconfig?: string
  context?: string
  /** Let the (single) imported key seal: dated now, it becomes the newest key. */
  active?: boolean
  /** Reuse this API client (tests); otherwise one from the kubeconfig. */
  api?: ClusterApi
}

export interface ImportedKey {
  kid: string
  /** `namespace/name` of the kseal key Secret. */
  secret: string
  /** Where it came from: the file, or the sealed-secrets key Secret. */
  from: string
  decryptOnly: boolean
  /** A key Secret for it was already there: nothing was written. */
  existed?: boolean
}

const block = (t: string | undefined, kind: string) =>
  t?.match(new RegExp(`-----BEGIN ${kind}-----[\\s\\S]+?-----END ${kind}-----\\n?`))?.[0]

interface Pair {
  from: string
  keyPem: string
  certPem?: string
}

async function apiFor(o: ImportOptions): Promise<ClusterApi> {
  return o.api ?? clusterApi(await loadKubeConfig({kubeconfig: o.kubeconfig, context: o.context}), {attempts: 3})
}

/**
 * `kseal keys --import FILE`: FILE is a PEM private key, with its certificate in the same file or
 * beside it (NAME.crt); or Secrets holding `tls.key` and `tls.crt` — the sealed-secrets controller's
 * key Secrets as `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`
 * writes them, or a kseal key backup. Each becomes a key of the controller in `namespace`, signed with
 * its trust root. A PEM key already imported is an error; Secrets already imported are skipped, so
 * importing the same backup again (after the old controller made a new key) adds only the new ones.
 */
export async function importKeyFile(file: string, o: ImportOptions): Promise<ImportedKey[]> {
  const text = await readKeyFile(file)
  const secrets = tlsSecretsFromManifest(text)
  if (secrets.length) {
    const pairs = secrets.map((s) => ({from: s.name ? `${file}: Secret ${s.name}` : file, keyPem: s.key, certPem: s.cert}))
    return importPairs(await apiFor(o), o, pairs, true)
  }
  const keyPem = block(text, 'PRIVATE KEY') ?? block(text, 'RSA PRIVATE KEY') ?? text
  const certPem =
    block(text, 'CERTIFICATE') ??
    block(await fs.readFile(file.replace(/\.(key|pem)$/, '') + '.crt', 'utf8').catch(() => undefined), 'CERTIFICATE')
  return importPairs(await apiFor(o), o, [{from: file, keyPem, certPem}], false)
}

/**
 * `kseal keys --import-from-cluster NAMESPACE`: the sealed-secrets controller's key Secrets (label
 * `sealedsecrets.bitnami.com/sealed-secrets-key`) in NAMESPACE, read through the same kubeconfig.
 */
export async function importClusterKeys(sourceNamespace: string, o: ImportOptions): Promise<ImportedKey[]> {
  const api = await apiFor(o)
  let items
  try {
    items = (await api.listSecrets(sourceNamespace, BITNAMI_KEY_LABEL)).items
  } catch (e) {
    throw new KsealError('ERR_BACKEND', `cannot list the sealed-secrets key Secrets in ${sourceNamespace}: ${describeError(e)}`)
  }
  const pairs: Pair[] = []
  for (const s of items) {
    const field = (k: string) => (s.data?.[k] === undefined ? undefined : Buffer.from(s.data[k], 'base64').toString('utf8'))
    const keyPem = field('tls.key')
    if (keyPem) pairs.push({from: `Secret ${sourceNamespace}/${s.metadata?.name}`, keyPem, certPem: field('tls.crt')})
  }
  if (!pairs.length)
    throw new KsealError('ERR_NOT_FOUND', `no Secret labelled ${BITNAMI_KEY_LABEL} with a tls.key in namespace ${sourceNamespace}`)
  return importPairs(api, o, pairs, true)
}

async function importPairs(api: ClusterApi, o: ImportOptions, pairs: Pair[], skipExisting: boolean): Promise<ImportedKey[]> {
  if (o.active && pairs.length !== 1)
    throw new KsealError('ERR_USAGE', `--active makes one key the sealing key, and there are ${pairs.length} here: import them without it`)
  const root = await api.getSecret(o.namespace, TRUST_SECRET).then((s) => (s ? trustRootOf(s) : null))
  if (!root)
    throw new KsealError(
      'ERR_CONFIG',
      `no trust root (Secret ${o.namespace}/${TRUST_SECRET}): start the controller once before importing keys`,
    )
  // Every pair is checked before any is written: a bad one leaves the cluster as it was.
  const secrets = []
  for (const p of pairs) secrets.push({p, ...(await signedSecret(o.namespace, root, p, o.active ?? false))})
  const out: ImportedKey[] = []
  for (const {p, kid, secret} of secrets) {
    const name = `${o.namespace}/${secret.metadata!.name}`
    const r = {kid, secret: name, from: p.from, decryptOnly: !o.active}
    try {
      await api.createSecret(o.namespace, secret)
      out.push(r)
    } catch (e) {
      if (!isAlreadyExists(e)) throw new KsealError('ERR_BACKEND', `cannot create the key Secret ${name}: ${describeError(e)}`)
      if (!skipExisting) throw new KsealError('ERR_USAGE', `a key Secret ${name} already exists`)
      out.push({...r, existed: true})
    }
  }
  return out
}

/**
 * Signs a key pair with the trust root as a key Secret. The key is dated by its certificate, so it
 * never outranks the controller's own keys by accident; `active` dates it now and lets it seal.
 */
async function signedSecret(namespace: string, root: Buffer, p: Pair, active: boolean) {
  let key: crypto.KeyObject
  try {
    key = crypto.createPrivateKey(p.keyPem)
  } catch {
    throw new KsealError('ERR_CONFIG', `${p.from}: not a PEM private key`)
  }
  const now = new Date()
  const cert = p.certPem ?? (await selfSignedCert(key, 'kseal-controller (imported)', now, CERT_DAYS))
  let when: Date
  try {
    when = active ? now : new Date(new crypto.X509Certificate(cert).validFrom)
  } catch {
    throw new KsealError('ERR_CONFIG', `${p.from}: tls.crt is not a PEM certificate`)
  }
  const kid = rsaKid(crypto.createPublicKey(key))
  const keyPem = key.export({type: 'pkcs8', format: 'pem'}) as string
  const secret = keySecret(namespace, {kid, keyPem, certPem: cert}, when, root, undefined, !active)
  try {
    parseKeySecret(secret, root, now) // the controller's own checks: RSA, 2048 bits, matching certificate, not in the future
  } catch (e) {
    throw new KsealError('ERR_CONFIG', `${p.from}: ${(e as Error).message}`)
  }
  return {kid, secret}
}
