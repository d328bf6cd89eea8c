/**
 * Getting the controller's current sealing certificate from outside the cluster, as `kubeseal
 * --fetch-cert` does: through the API server's service proxy to the controller's `/v1/cert.pem`
 * (the caller needs only `get services/proxy`), or straight from the newest key Secret for an
 * operator who may read Secrets in the controller's namespace.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import {KsealError} from '../errors.js'
import {KEY_CREATED_ANNOTATION, KEY_SELECTOR} from './keys.js'
import {clusterApi, describeError, loadKubeConfig, type KubeOptions} from './kube.js'

export const DEFAULT_CONTROLLER_NAMESPACE = 'kseal-system'
export const DEFAULT_CONTROLLER_NAME = 'kseal-controller'

export interface ControllerRef extends KubeOptions {
  namespace: string
  name: string
}

/** The service-proxy path of the controller's certificate endpoint (service port named `http`). */
export function certProxyPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/http:${encodeURIComponent(name)}:http/proxy/v1/cert.pem`
}

function checkPem(pem: string, where: string): string {
  try {
    new crypto.X509Certificate(pem)
  } catch {
    throw new KsealError('ERR_BACKEND', `${where} did not return a PEM certificate`)
  }
  return pem.endsWith('\n') ? pem : pem + '\n'
}

/** The controller's certificate, through the API server's service proxy. */
export async function fetchControllerCert(ref: ControllerRef, timeoutMs = 15_000): Promise<string> {
  const kc = await loadKubeConfig(ref)
  const server = kc.getCurrentCluster()!.server.replace(/\/+$/, '')
  const url = new URL(server + certProxyPath(ref.namespace, ref.name))
  const opts: https.RequestOptions = {method: 'GET', headers: {accept: 'application/x-pem-file, */*'}, timeout: timeoutMs}
  try {
    await kc.applyToHTTPSOptions(opts)
  } catch (e) {
    throw new KsealError('ERR_CONFIG', `cannot use the kubeconfig: ${(e as Error).message.split('\n')[0]}`)
  }
  const where = `the controller ${ref.namespace}/${ref.name}`
  const {status, body} = await new Promise<{status: number; body: string}>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, opts, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        if (body.length < 1 << 20) body += d
      })
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)))
    req.on('error', (e) => reject(new KsealError('ERR_BACKEND', `cannot reach the Kubernetes API at ${server}: ${describeError(e)}`)))
    req.end()
  })
  if (status !== 200) {
    let detail = ''
    try {
      const s = JSON.parse(body) as {message?: string}
      detail = s.message ? `: ${s.message}` : ''
    } catch {
      detail = body.trim() ? `: ${body.trim().split('\n')[0].slice(0, 200)}` : ''
    }
    const hint = status === 404 ? ' (is the controller installed there? see --controller-namespace/--controller-name)'
      : status === 503 ? ' (the controller is not ready or has no key yet)' : status === 403 ? ' (you need get on services/proxy)' : ''
    throw new KsealError('ERR_BACKEND', `cannot fetch the certificate from ${where}: HTTP ${status}${detail}${hint}`)
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
