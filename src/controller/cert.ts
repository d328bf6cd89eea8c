/**
 * Getting the controller's current sealing certificate from outside the cluster, as `kubeseal
 * --fetch-cert` does: through the API server's service proxy to the controller's `/v1/cert.pem`
 * (the caller needs only `get services/proxy`), or straight from the newest key Secret for an
 * operator who may read Secrets in the controller's namespace.
 */
import crypto from 'node:crypto'
import {KsealError} from '../errors.js'
import {controllerRequest, type ControllerRef, type ControllerTarget, describeTarget, errorDetail, statusHint} from './client.js'
import {KEY_CREATED_ANNOTATION, KEY_SELECTOR} from './keys.js'
import {clusterApi, describeError, loadKubeConfig, type KubeOptions} from './kube.js'

export {DEFAULT_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE, type ControllerRef, type ControllerTarget} from './client.js'

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
    throw new KsealError('ERR_BACKEND', `cannot fetch the certificate from ${where}: HTTP ${status}${detail ? `: ${detail}` : ''}${statusHint(status)}`)
  }
  return checkPem(body, where)
}

/** The newest sealing certificate, read from the key Secrets themselves (needs read access to them). */
export async function newestKeyCert(o: KubeOptions & {namespace: string}): Promise<string> {
  const api = await clusterApi(await loadKubeConfig(o), {attempts: 3})
  let items
  try {
    items = (await api.listSecrets(o.namespace, KEY_SELECTOR)).items
  } catch (e) {
    throw new KsealError('ERR_BACKEND', `cannot list the key Secrets in ${o.namespace}: ${describeError(e)}`)
  }
  const created = (s: (typeof items)[number]) => new Date(String(s.metadata?.annotations?.[KEY_CREATED_ANNOTATION] ?? s.metadata?.creationTimestamp ?? 0)).getTime() || 0
  const newest = items.filter((s) => s.data?.['tls.crt']).sort((a, b) => created(a) - created(b)).at(-1)
  if (!newest) throw new KsealError('ERR_BACKEND', `no sealing key Secret (label ${KEY_SELECTOR}) in namespace ${o.namespace}`)
  return checkPem(Buffer.from(newest.data!['tls.crt'], 'base64').toString('utf8'), `Secret ${o.namespace}/${newest.metadata?.name}`)
}
