/**
 * Getting the controller's current sealing certificate from outside the cluster, as `kubeseal
 * --fetch-cert` does: through the API server's service proxy to the controller's `/v1/cert.pem`
 * (the caller needs only `get services/proxy`), or straight from the newest key Secret for an
 * operator who may read Secrets in the controller's namespace.
 */
import crypto from 'node:crypto'
import {KsealError} from '../core/errors.js'
import {controllerRequest, type ControllerRef, type ControllerTarget, describeTarget, errorDetail, statusHint} from './endpoints.js'
import {
  KEY_LABEL,
  KEY_LABEL_ACTIVE,
  KEY_SELECTOR,
  KEY_WATCH_SELECTOR,
  parseKeySecret,
  TRUST_SECRET,
  trustRootOf,
} from '../sealed/sealing-key.js'
import {clusterApi} from '../kube/api.js'
import {loadKubeConfig, type KubeOptions} from '../kube/config.js'
import {describeError} from '../kube/errors.js'

export {DEFAULT_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE, type ControllerRef, type ControllerTarget} from './endpoints.js'

function checkPem(pem: string, where: string): string {
  try {
    new crypto.X509Certificate(pem)
  } catch {
    throw new KsealError('ERR_BACKEND', `${where} did not return a PEM certificate`)
  }
  return pem.endsWith('\n') ? pem : pem + '\n'
}

/** The controller's certificate, through the API server's service proxy (or from --controller-url). */
export async function fetchControllerCert(ref: ControllerRef | ControllerTarget, timeoutMs = 15_000): Promise<string> {
  const where = describeTarget(ref)
  const {status, body} = await controllerRequest(ref, '/v1/cert.pem', {accept: 'application/x-pem-file, */*', timeoutMs, maxBytes: 1 << 20})
  if (status !== 200) {
    const detail = errorDetail(body)
    throw new KsealError(
      'ERR_BACKEND',
      `cannot fetch the certificate from ${where}: HTTP ${status}${detail ? `: ${detail}` : ''}${statusHint(status)}`,
    )
  }
  return checkPem(body, where)
}

/**
 * The newest sealing certificate, read from the key Secrets themselves (needs read access to them):
 * only keys the trust root vouches for count, as for the controller.
 */
export async function newestKeyCert(o: KubeOptions & {namespace: string}): Promise<string> {
  const api = await clusterApi(await loadKubeConfig(o), {attempts: 3})
  let items
  try {
    items = (await api.listSecrets(o.namespace, KEY_WATCH_SELECTOR)).items
  } catch (e) {
    throw new KsealError('ERR_BACKEND', `cannot list the key Secrets in ${o.namespace}: ${describeError(e)}`)
  }
  const root = items.map(trustRootOf).find((r) => r !== null)
  if (!root)
    throw new KsealError(
      'ERR_BACKEND',
      `no trust root (Secret ${TRUST_SECRET}) in namespace ${o.namespace}: the controller has not started there yet`,
    )
  const now = new Date()
  const trusted = items.flatMap((s) => {
    try {
      return s.metadata?.labels?.[KEY_LABEL] === KEY_LABEL_ACTIVE ? [parseKeySecret(s, root, now)] : []
    } catch {
      return []
    }
  })
  const newest = trusted
    .filter((k) => !k.decryptOnly)
    .sort((a, b) => a.created.getTime() - b.created.getTime())
    .at(-1)
  if (!newest) throw new KsealError('ERR_BACKEND', `no trusted sealing key Secret (label ${KEY_SELECTOR}) in namespace ${o.namespace}`)
  return checkPem(newest.certPem, `Secret ${o.namespace}/${newest.secretName}`)
}
