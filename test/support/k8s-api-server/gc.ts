/**
 * The garbage collector and namespace controller emulation: ownerReferences (background,
 * foreground, orphan), finalizers, and emptying a terminating namespace. Runs after each write.
 */
import type {Server} from './server.js'
import {StatusError} from './status.js'
import type {Def, KubeObject} from './types.js'
import {objKey} from './util.js'
import {remove, update} from './write.js'

export function scheduleGc(s: Server): void {
  if (!s.opts.gc || s.closed || s.gcTimer) return
  s.gcTimer = setTimeout(() => {
    s.gcTimer = undefined
    try {
      gcPass(s)
    } finally {
      if (!s.gcTimer) for (const r of s.gcWaiters.splice(0)) r()
    }
  }, s.opts.gcDelayMs)
}

export function allObjects(s: Server): Array<{def: Def; obj: KubeObject}> {
  const out: Array<{def: Def; obj: KubeObject}> = []
  const seen = new Set<string>()
  for (const d of s.defs) {
    if (seen.has(d.storageKey)) continue
    seen.add(d.storageKey)
    for (const o of s.bucket(d).objects.values()) out.push({def: d, obj: o})
  }
  return out
}

export function dependentsOf(s: Server, uid: string): Array<{def: Def; obj: KubeObject}> {
  return allObjects(s).filter(({obj}) => ((obj.metadata.ownerReferences as KubeObject[] | undefined) ?? []).some((r) => r.uid === uid))
}

/** Remove a finalizer through the regular update path (deletes the object if it was the last one). */
export function removeFinalizer(s: Server, def: Def, obj: KubeObject, finalizer: string, specFinalizer = false): void {
  const cur = s.bucket(def).objects.get(objKey(obj.metadata.namespace, obj.metadata.name))
  if (!cur) return
  const next = s.toViewOrdered(def, cur)
  if (specFinalizer) {
    next.spec = {...(next.spec ?? {}), finalizers: ((next.spec?.finalizers as string[] | undefined) ?? []).filter((f) => f !== finalizer)}
    update(s, def, next.metadata.namespace, next.metadata.name, 'finalize', next, false, 'update')
  } else {
    next.metadata.finalizers = ((next.metadata.finalizers as string[] | undefined) ?? []).filter((f) => f !== finalizer)
    update(s, def, next.metadata.namespace, next.metadata.name, undefined, next, false, 'update')
  }
}

export function gcDelete(s: Server, def: Def, obj: KubeObject, policy = 'Background'): void {
  try {
    remove(s, def, obj.metadata.namespace, obj.metadata.name, {propagationPolicy: policy, preconditions: {uid: obj.metadata.uid}})
  } catch (e) {
    if (!(e instanceof StatusError && (e.code === 404 || e.code === 409))) throw e
  }
}

export function gcPass(s: Server): void {
  if (s.closed) return
  for (const {def, obj} of allObjects(s)) {
    try {
      gcObject(s, def, obj)
    } catch (e) {
      // Like the real GC: a failed attempt is not fatal; the next write triggers another pass.
      if (!(e instanceof StatusError)) throw e
    }
  }
}

export function gcObject(s: Server, def: Def, obj: KubeObject): void {
  const m = obj.metadata as KubeObject
  const live = s.bucket(def).objects.get(objKey(m.namespace, m.name))
  if (live !== obj) return // changed during this pass
  const fins = (m.finalizers as string[] | undefined) ?? []
  if (m.deletionTimestamp && fins.includes('orphan')) {
    for (const dep of dependentsOf(s, m.uid)) {
      const v = s.toViewOrdered(dep.def, dep.obj)
      v.metadata.ownerReferences = (v.metadata.ownerReferences as KubeObject[]).filter((r) => r.uid !== m.uid)
      if (!v.metadata.ownerReferences.length) delete v.metadata.ownerReferences
      update(s, dep.def, v.metadata.namespace, v.metadata.name, undefined, v, false, 'update')
    }
    removeFinalizer(s, def, obj, 'orphan')
    return
  }
  if (m.deletionTimestamp && fins.includes('foregroundDeletion')) {
    const deps = dependentsOf(s, m.uid)
    for (const dep of deps) if (!dep.obj.metadata.deletionTimestamp) gcDelete(s, dep.def, dep.obj, 'Foreground')
    const blocking = deps.filter(
      (d) =>
        s.bucket(d.def).objects.has(objKey(d.obj.metadata.namespace, d.obj.metadata.name)) &&
        ((d.obj.metadata.ownerReferences as KubeObject[]) ?? []).some((r) => r.uid === m.uid && r.blockOwnerDeletion === true),
    )
    if (!blocking.length) removeFinalizer(s, def, obj, 'foregroundDeletion')
    return
  }
  if (def.group === '' && def.resource === 'namespaces' && m.deletionTimestamp) {
    let remaining = 0
    for (const other of allObjects(s)) {
      if (!other.def.namespaced || other.obj.metadata.namespace !== m.name) continue
      remaining++
      if (!other.obj.metadata.deletionTimestamp) gcDelete(s, other.def, other.obj)
    }
    if (remaining === 0 && ((obj.spec?.finalizers as string[] | undefined) ?? []).includes('kubernetes')) {
      removeFinalizer(s, def, obj, 'kubernetes', true)
    }
    return
  }
  const refs = (m.ownerReferences as KubeObject[] | undefined) ?? []
  if (!refs.length) return
  const absent: KubeObject[] = []
  let resolvable = 0
  for (const ref of refs) {
    const ownerDef = s.defForOwner(String(ref.apiVersion ?? ''), String(ref.kind ?? ''))
    if (!ownerDef) continue // the real GC cannot resolve it either: leave the dependent alone
    resolvable++
    const owner = s.bucket(ownerDef).objects.get(objKey(ownerDef.namespaced ? m.namespace : undefined, String(ref.name)))
    if (!owner || owner.metadata.uid !== ref.uid) absent.push(ref)
  }
  if (!absent.length) return
  if (absent.length === refs.length && resolvable === refs.length) {
    if (!m.deletionTimestamp) gcDelete(s, def, obj)
  } else if (absent.length < refs.length) {
    const v = s.toViewOrdered(def, obj)
    v.metadata.ownerReferences = refs.filter((r) => !absent.includes(r))
    update(s, def, m.namespace, m.name, undefined, v, false, 'update')
  }
}
