/**
 * A watched SealedSecret as the controller keeps it in memory: what reconcile reads and writes back
 * with — apiVersion, kind, identity, generation, resourceVersion, deletionTimestamp, labels, spec and
 * status. Not managedFields (the server's record of who set which field, often larger than the spec),
 * and not `kubectl.kubernetes.io/last-applied-configuration`, which `kubectl apply` fills with a
 * second copy of the whole object, wrapped keys and all. Other annotations are kept.
 */
import type {SealedSecretObject} from '../../sealed/types.js'

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

export function slimSealed(o: SealedSecretObject): SealedSecretObject {
  const md = o.metadata ?? ({} as SealedSecretObject['metadata'])
  const metadata: SealedSecretObject['metadata'] = {name: md.name}
  if (md.namespace !== undefined) metadata.namespace = md.namespace
  if (md.uid !== undefined) metadata.uid = md.uid
  if (md.generation !== undefined) metadata.generation = md.generation
  if (md.resourceVersion !== undefined) metadata.resourceVersion = md.resourceVersion
  if (md.deletionTimestamp !== undefined) metadata.deletionTimestamp = md.deletionTimestamp
  if (md.labels !== undefined) metadata.labels = md.labels
  if (md.annotations !== undefined) {
    const annotations = Object.fromEntries(Object.entries(md.annotations).filter(([k]) => k !== LAST_APPLIED))
    if (Object.keys(annotations).length) metadata.annotations = annotations
  }
  const out: SealedSecretObject = {apiVersion: o.apiVersion, kind: o.kind, metadata, spec: o.spec}
  if (o.status !== undefined) out.status = o.status
  return out
}
