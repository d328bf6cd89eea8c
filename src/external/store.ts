/**
 * Which store an ExternalSecret may use, and what a store's auth may reach. A SecretStore serves
 * only ExternalSecrets of its own namespace; a ClusterSecretStore serves every namespace unless its
 * conditions (namespace names, RE2 regexps, label selectors) say otherwise. Everything a store
 * references — a Secret with credentials, a ServiceAccount to get a token for — is resolved in the
 * ExternalSecret's namespace and nowhere else: StoreAccess is always called with that namespace.
 * The controller backs StoreAccess with its API client (kube-access.ts); `kseal external render`
 * with the caller's kubeconfig or local manifests.
 */
import {KsealError} from '../core/errors.js'
import {compileRe2} from '../core/regex.js'
import {CLUSTER_SECRET_STORE_KIND, type ExternalSecret, type LabelSelector, type SecretKeyRef, type SecretStore} from './types.js'

export interface ServiceAccountToken {
  token: string
  /** ms since the epoch. */
  expiresAt: number
}

export interface TokenRequestSpec {
  name: string
  audiences: string[]
  expirationSeconds: number
}

/** What providers may read from the cluster, always in the ExternalSecret's namespace. */
export interface StoreAccess {
  /** One key of a Secret (its bytes). ERR_NOT_FOUND when the Secret or key is missing. */
  secretKey(namespace: string, ref: SecretKeyRef): Promise<Uint8Array>
  /** A TokenRequest: a short-lived, audience-bound token for a ServiceAccount. */
  serviceAccountToken(namespace: string, spec: TokenRequestSpec): Promise<ServiceAccountToken>
  /** A ServiceAccount's annotations (IRSA's eks.amazonaws.com/role-arn). */
  serviceAccountAnnotations(namespace: string, name: string): Promise<Record<string, string>>
  /** A namespace's labels, for ClusterSecretStore namespaceSelector conditions. */
  namespaceLabels(namespace: string): Promise<Record<string, string>>
}

/** `SecretStore apps/aws`, `ClusterSecretStore shared`. */
export function storeLabel(store: SecretStore): string {
  return `${store.kind} ${store.metadata.namespace ? `${store.metadata.namespace}/` : ''}${store.metadata.name}`
}

export function esLabel(es: ExternalSecret): string {
  return `ExternalSecret ${es.metadata.namespace}/${es.metadata.name}`
}

/** Whether a label set satisfies a selector (metav1.LabelSelector semantics). */
export function matchesSelector(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels)) if (labels[k] !== v) return false
  for (const e of sel.matchExpressions) {
    const has = Object.hasOwn(labels, e.key)
    if (e.operator === 'Exists' && !has) return false
    if (e.operator === 'DoesNotExist' && has) return false
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false
  }
  return true
}

/**
 * Refuses (ERR_DENIED) an ExternalSecret using a store it may not use: another namespace's
 * SecretStore, a store other than the one it names, or a ClusterSecretStore whose conditions
 * leave its namespace out. `namespaceLabels` is only called for label-selector conditions.
 */
export async function checkStoreUse(
  es: ExternalSecret,
  store: SecretStore,
  namespaceLabels?: (namespace: string) => Promise<Record<string, string>>,
): Promise<void> {
  const ns = es.metadata.namespace
  const deny = (why: string) => new KsealError('ERR_DENIED', `${esLabel(es)}: ${storeLabel(store)} ${why}`)
  if (store.kind !== es.secretStoreRef.kind || store.metadata.name !== es.secretStoreRef.name) {
    throw deny(`is not the store it names (${es.secretStoreRef.kind} ${es.secretStoreRef.name})`)
  }
  if (store.kind !== CLUSTER_SECRET_STORE_KIND) {
    if (store.metadata.namespace !== ns) throw deny(`serves only ExternalSecrets in namespace ${store.metadata.namespace}, not ${ns}`)
    return
  }
  if (store.conditions.length === 0) return
  let labels: Record<string, string> | undefined
  for (const [i, c] of store.conditions.entries()) {
    if (c.namespaces.includes(ns)) return
    if (c.namespaceRegexes.some((re, j) => compileRe2(re, `${storeLabel(store)}: spec.conditions[${i}].namespaceRegexes[${j}]`).test(ns)))
      return
    if (c.namespaceSelector) {
      if (!namespaceLabels)
        throw new KsealError(
          'ERR_CONFIG',
          `${esLabel(es)}: ${storeLabel(store)} selects namespaces by label, and the labels of namespace ${ns} are not available`,
        )
      labels ??= await namespaceLabels(ns)
      if (matchesSelector(c.namespaceSelector, labels)) return
    }
  }
  throw deny(`does not serve namespace ${ns} (its spec.conditions leave it out)`)
}
