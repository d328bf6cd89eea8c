/**
 * What stores may read in the cluster, through the controller's own API adapter (its retries, its
 * connections): one key of a Secret, a TokenRequest token, a ServiceAccount's annotations, a
 * namespace's labels — always in the namespace the caller names, which is the ExternalSecret's
 * (src/external/store.ts). Errors name the object, never a value.
 */
import {KsealError} from '../../core/errors.js'
import {apiError, keyOf, requestedToken} from '../../external/access.js'
import type {StoreAccess} from '../../external/store.js'
import type {ClusterApi} from '../../kube/api.js'

export function clusterAccess(api: ClusterApi): StoreAccess {
  const read = async <T>(what: string, p: Promise<T | null>): Promise<T> => {
    let v: T | null
    try {
      v = await p
    } catch (e) {
      throw apiError(e, what)
    }
    if (v === null) throw new KsealError('ERR_NOT_FOUND', `${what}: not found`)
    return v
  }
  return {
    async secretKey(namespace, ref) {
      const s = await read(`Secret ${namespace}/${ref.name}`, api.getSecret(namespace, ref.name))
      return keyOf(s.data, namespace, ref)
    },
    async serviceAccountToken(namespace, spec) {
      const what = `TokenRequest for ServiceAccount ${namespace}/${spec.name}`
      let r
      try {
        r = await api.createServiceAccountToken(namespace, spec.name, {
          audiences: spec.audiences,
          expirationSeconds: spec.expirationSeconds,
        })
      } catch (e) {
        throw apiError(e, what)
      }
      return requestedToken(what, spec, r.token, r.expirationTimestamp)
    },
    async serviceAccountAnnotations(namespace, name) {
      return (await read(`ServiceAccount ${namespace}/${name}`, api.getServiceAccount(namespace, name))).metadata?.annotations ?? {}
    },
    async namespaceLabels(namespace) {
      return (await read(`Namespace ${namespace}`, api.getNamespace(namespace))).metadata?.labels ?? {}
    },
  }
}
