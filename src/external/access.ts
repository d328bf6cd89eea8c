/**
 * StoreAccess implementations: through the Kubernetes API (@kubernetes/client-node; the controller
 * with its own client, `kseal external render` with the caller's kubeconfig), and from manifests on
 * disk (render offline: `--secrets FILE` with Secrets, ServiceAccounts and Namespaces), layered so
 * local manifests answer first. Errors name the object and key, never a value.
 */
import type {KubeConfig} from '@kubernetes/client-node'
import {apiClient} from '../kube/agents.js'
import {retryingConnection} from '../kube/api.js'
import {loadK8s} from '../kube/config.js'
import {apiFailure} from '../kube/errors.js'
import {KsealError} from '../core/errors.js'
import {isObj, type Obj} from '../core/guards.js'
import type {ServiceAccountToken, StoreAccess, TokenRequestSpec} from './store.js'
import type {SecretKeyRef} from './types.js'

/** A failed API call as the error a provider reports: ERR_NOT_FOUND, ERR_DENIED (401, 403) or ERR_BACKEND, naming `what`. */
export function apiError(e: unknown, what: string): KsealError {
  const f = apiFailure(e)
  if (!f)
    return new KsealError(
      'ERR_BACKEND',
      `${what}: cannot reach the Kubernetes API: ${String((e as Error)?.message ?? e)
        .split('\n')[0]
        .slice(0, 200)}`,
    )
  const msg = `HTTP ${f.code}${f.reason ? ` ${f.reason}` : ''}${f.message ? `: ${f.message}` : ''}`
  if (f.code === 404) return new KsealError('ERR_NOT_FOUND', `${what}: not found (${msg})`)
  if (f.code === 401 || f.code === 403) return new KsealError('ERR_DENIED', `${what}: ${msg}`)
  return new KsealError('ERR_BACKEND', `${what}: ${msg}`)
}

/** A TokenRequest's answer as a ServiceAccountToken (expiring as asked when the answer does not say); ERR_BACKEND when it holds no token. */
export function requestedToken(
  what: string,
  spec: TokenRequestSpec,
  token: string | undefined,
  expirationTimestamp: Date | undefined,
): ServiceAccountToken {
  if (!token) throw new KsealError('ERR_BACKEND', `${what}: the answer holds no token`)
  const exp = expirationTimestamp ? new Date(expirationTimestamp).getTime() : Date.now() + spec.expirationSeconds * 1000
  return {token, expiresAt: exp}
}

/** One key of a Secret's data (base64) as bytes; ERR_NOT_FOUND when it has no such key. */
export function keyOf(data: Record<string, string> | undefined, ns: string, ref: SecretKeyRef): Uint8Array {
  const v = data?.[ref.key]
  if (v === undefined || !Object.hasOwn(data!, ref.key))
    throw new KsealError('ERR_NOT_FOUND', `Secret ${ns}/${ref.name} has no key ${JSON.stringify(ref.key)}`)
  return Buffer.from(v, 'base64')
}

/** StoreAccess through the API with a kubeconfig's credentials. */
export async function kubeAccess(kc: KubeConfig): Promise<StoreAccess> {
  const k8s = await loadK8s()
  const core = apiClient(k8s, kc, k8s.CoreV1Api)
  return {
    async secretKey(namespace, ref) {
      let s
      try {
        s = await retryingConnection(() => core.readNamespacedSecret({name: ref.name, namespace}))
      } catch (e) {
        throw apiError(e, `Secret ${namespace}/${ref.name}`)
      }
      return keyOf(s.data, namespace, ref)
    },
    async serviceAccountToken(namespace, spec: TokenRequestSpec): Promise<ServiceAccountToken> {
      let r
      try {
        // (Asking again is safe: a TokenRequest whose answer was lost only leaves a token nobody holds.)
        r = await retryingConnection(() =>
          core.createNamespacedServiceAccountToken({
            namespace,
            name: spec.name,
            body: {
              apiVersion: 'authentication.k8s.io/v1',
              kind: 'TokenRequest',
              spec: {audiences: spec.audiences, expirationSeconds: spec.expirationSeconds},
            },
          }),
        )
      } catch (e) {
        throw apiError(e, `TokenRequest for ServiceAccount ${namespace}/${spec.name}`)
      }
      return requestedToken(
        `TokenRequest for ServiceAccount ${namespace}/${spec.name}`,
        spec,
        r.status?.token,
        r.status?.expirationTimestamp,
      )
    },
    async serviceAccountAnnotations(namespace, name) {
      try {
        return (await retryingConnection(() => core.readNamespacedServiceAccount({name, namespace}))).metadata?.annotations ?? {}
      } catch (e) {
        throw apiError(e, `ServiceAccount ${namespace}/${name}`)
      }
    },
    async namespaceLabels(namespace) {
      try {
        return (await retryingConnection(() => core.readNamespace({name: namespace}))).metadata?.labels ?? {}
      } catch (e) {
        throw apiError(e, `Namespace ${namespace}`)
      }
    },
  }
}

/**
 * StoreAccess from manifests (Secrets with data or stringData, ServiceAccounts, Namespaces);
 * whatever they do not hold is asked of `fallback` (lazily made: the kubeconfig is only loaded when
 * needed), or refused with a message saying what to pass.
 */
export function manifestAccess(objects: Obj[], fallback?: () => Promise<StoreAccess>): StoreAccess {
  const find = (kind: string, namespace: string | undefined, name: string) =>
    objects.find(
      (o) =>
        o.kind === kind &&
        isObj(o.metadata) &&
        o.metadata.name === name &&
        (namespace === undefined || (o.metadata.namespace ?? 'default') === namespace),
    )
  let fb: Promise<StoreAccess> | undefined
  const next = async (what: string): Promise<StoreAccess> => {
    if (!fallback) throw new KsealError('ERR_CONFIG', `${what} is not in the --secrets files, and no cluster was given to ask`)
    fb ??= fallback()
    return fb
  }
  return {
    async secretKey(namespace, ref) {
      const s = find('Secret', namespace, ref.name)
      if (!s) return (await next(`Secret ${namespace}/${ref.name}`)).secretKey(namespace, ref)
      const string = isObj(s.stringData) ? (s.stringData as Record<string, unknown>)[ref.key] : undefined
      if (typeof string === 'string') return Buffer.from(string, 'utf8')
      return keyOf(isObj(s.data) ? (s.data as Record<string, string>) : undefined, namespace, ref)
    },
    async serviceAccountToken(namespace, spec) {
      return (await next(`a token for ServiceAccount ${namespace}/${spec.name}`)).serviceAccountToken(namespace, spec)
    },
    async serviceAccountAnnotations(namespace, name) {
      const sa = find('ServiceAccount', namespace, name)
      if (!sa) return (await next(`ServiceAccount ${namespace}/${name}`)).serviceAccountAnnotations(namespace, name)
      const a = (sa.metadata as Obj).annotations
      return isObj(a) ? (a as Record<string, string>) : {}
    },
    async namespaceLabels(namespace) {
      const n = find('Namespace', undefined, namespace)
      if (!n) return (await next(`the labels of Namespace ${namespace}`)).namespaceLabels(namespace)
      const l = (n.metadata as Obj).labels
      return isObj(l) ? (l as Record<string, string>) : {}
    },
  }
}
