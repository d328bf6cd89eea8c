/**
 * `kseal keys --import`: the administrator's explicit path for a key pair the controller did not make
 * (a key from another cluster, a restored backup whose trust root is gone). Needs read access to the
 * trust root and create on Secrets in the key namespace.
 */
import crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import {readKeyFile} from '../../keys/keyfile.js'
import {rsaKid, selfSignedCert} from '../../keys/rsa.js'
import {KsealError} from '../core/errors.js'
import {clusterApi, type ClusterApi} from '../kube/api.js'
import {loadKubeConfig} from '../kube/config.js'
import {describeError, isAlreadyExists} from '../kube/errors.js'
import {CERT_DAYS, keySecret, parseKeySecret, TRUST_SECRET, trustRootOf} from '../sealed/sealing-key.js'

/**
 * `kseal keys --import FILE`: FILE is a PEM private key, with its certificate in the same file or
 * beside it (NAME.crt); the key becomes a sealing key of the controller in `namespace`, signed with
 * its trust root (read through the kubeconfig).
 */
export async function importKeyFile(
  file: string,
  o: {namespace: string; kubeconfig?: string; context?: string},
): Promise<{kid: string; secret: string}> {
  const text = await readKeyFile(file)
  const block = (t: string | undefined, kind: string) =>
    t?.match(new RegExp(`-----BEGIN ${kind}-----[\\s\\S]+?-----END ${kind}-----\\n?`))?.[0]
  const keyPem = block(text, 'PRIVATE KEY') ?? block(text, 'RSA PRIVATE KEY') ?? text
  const certPem =
    block(text, 'CERTIFICATE') ??
    block(await fs.readFile(file.replace(/\.(key|pem)$/, '') + '.crt', 'utf8').catch(() => undefined), 'CERTIFICATE')
  const api = await clusterApi(await loadKubeConfig({kubeconfig: o.kubeconfig, context: o.context}), {attempts: 3})
  return importKey(api, o.namespace, keyPem, certPem)
}

/**
 * Signs a key pair with the trust root and stores it as a key Secret. The key is dated by its
 * certificate (or `created`), so an old key does not become the sealing key unless it is the newest.
 */
async function importKey(
  api: ClusterApi,
  namespace: string,
  keyPem: string,
  certPem: string | undefined,
  created?: Date,
): Promise<{kid: string; secret: string}> {
  const root = await api.getSecret(namespace, TRUST_SECRET).then((s) => (s ? trustRootOf(s) : null))
  if (!root)
    throw new KsealError(
      'ERR_CONFIG',
      `no trust root (Secret ${namespace}/${TRUST_SECRET}): start the controller once before importing keys`,
    )
  let key: crypto.KeyObject
  try {
    key = crypto.createPrivateKey(keyPem)
  } catch {
    throw new KsealError('ERR_CONFIG', 'not a PEM private key')
  }
  const cert = certPem ?? (await selfSignedCert(key, 'kseal-controller (imported)', created ?? new Date(), CERT_DAYS))
  const when = created ?? new Date(new crypto.X509Certificate(cert).validFrom)
  const kid = rsaKid(crypto.createPublicKey(key))
  const secret = keySecret(namespace, {kid, keyPem: key.export({type: 'pkcs8', format: 'pem'}) as string, certPem: cert}, when, root)
  parseKeySecret(secret, root, new Date()) // the controller's own checks: RSA, 2048 bits, matching certificate, not in the future
  try {
    await api.createSecret(namespace, secret)
  } catch (e) {
    if (isAlreadyExists(e)) throw new KsealError('ERR_USAGE', `a key Secret ${namespace}/${secret.metadata!.name} already exists`)
    throw new KsealError('ERR_BACKEND', `cannot create the key Secret: ${describeError(e)}`)
  }
  return {kid, secret: `${namespace}/${secret.metadata!.name}`}
}
