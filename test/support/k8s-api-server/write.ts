/**
 * create, update, patch and delete: optimistic concurrency, system fields, generation, status and
 * finalize subresources, finalizers and graceful deletion, NamespaceLifecycle admission.
 */
import {randomInt, randomUUID} from 'node:crypto'
import type {IncomingMessage} from 'node:http'
import {decodeTyped} from './decode.js'
import {JsonPatchApplyError, PATCH_TYPES, applyJsonPatch, jsonMergePatch, strategicMergePatch} from './patch.js'
import type {Server} from './server.js'
import {errors, fe, goMapFormat, goQuote} from './status.js'
import type {Bucket, Def, KubeObject} from './types.js'
import {clone, deepEqual, isObj, meta, nowTime, objKey} from './util.js'
import {runValidation} from './validation.js'

export interface DeleteOptions {
  propagationPolicy?: string
  preconditions?: {uid?: string; resourceVersion?: string}
  dryRun?: boolean
}

export const GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

export function ensureNamespace(def: Def, ns: string | undefined, obj: KubeObject): void {
  const m = meta(obj)
  if (!def.namespaced) {
    delete m.namespace
    return
  }
  if (m.namespace === undefined || m.namespace === '') m.namespace = ns
  else if (m.namespace !== ns)
    throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request')
}

export function specChanged(def: Def, a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const {metadata: _m, status, ...rest} = o
    return def.custom && !def.statusSubresource ? {...rest, status} : rest
  }
  return !deepEqual(strip(a), strip(b))
}

export function create(s: Server, def: Def, ns: string | undefined, input: KubeObject, dryRun: boolean): KubeObject {
  ensureNamespace(def, ns, input)
  let obj = s.toStorage(def, input)
  const m = meta(obj)
  const requestedRv = m.resourceVersion
  // BeforeCreate: system fields are owned by the server.
  m.uid = randomUUID()
  m.creationTimestamp = nowTime()
  delete m.deletionTimestamp
  delete m.deletionGracePeriodSeconds
  delete m.selfLink
  delete m.managedFields
  if (def.generation) m.generation = 1
  else delete m.generation
  if (def.statusSubresource && def.custom) delete obj.status // create cannot set status
  def.prepareForCreate?.(obj)
  const b = s.bucket(def)
  let generated = false
  if (!m.name && m.generateName) {
    generated = true
    m.name = generateName(b, m.namespace, String(m.generateName))
  }
  runValidation(s, def, obj, undefined)
  admitCreate(s, def, obj)
  if (requestedRv) throw errors.unknown('resourceVersion should not be set on objects to be created')
  const key = objKey(m.namespace, m.name)
  if (b.objects.has(key)) {
    if (!generated) throw errors.alreadyExists(def, m.name)
    m.name = generateName(b, m.namespace, String(m.generateName))
  }
  if (dryRun) {
    obj = clone(obj)
    delete obj.metadata.resourceVersion
    return s.toViewOrdered(def, obj)
  }
  const stored = s.commit(b, 'ADDED', obj, undefined)
  return s.toViewOrdered(def, stored)
}

export function generateName(b: Bucket, ns: string | undefined, base: string): string {
  const prefix = base.length > 58 ? base.slice(0, 58) : base
  for (;;) {
    let s = ''
    for (let i = 0; i < 5; i++) s += GENERATE_NAME_ALPHABET[randomInt(GENERATE_NAME_ALPHABET.length)]
    if (!b.objects.has(objKey(ns, prefix + s))) return prefix + s
  }
}

/** NamespaceLifecycle admission. */
export function admitCreate(s: Server, def: Def, obj: KubeObject): void {
  if (!def.namespaced) return
  const ns = obj.metadata.namespace as string
  const nsDef = s.findDef('', 'v1', 'namespaces')!
  const nsObj = s.bucket(nsDef).objects.get(objKey(undefined, ns))
  if (!nsObj) {
    if (s.opts.requireNamespaces) throw errors.notFound(nsDef, ns)
    return
  }
  if (nsObj.metadata.deletionTimestamp || nsObj.status?.phase === 'Terminating') {
    throw errors.forbidden(def, obj.metadata.name, `unable to create new content in namespace ${ns} because it is being terminated`, [
      {reason: 'NamespaceTerminating', message: `namespace ${ns} is being terminated`, field: 'metadata.namespace'},
    ])
  }
}

export function update(
  s: Server,
  def: Def,
  ns: string | undefined,
  name: string,
  subresource: string | undefined,
  input: KubeObject,
  dryRun: boolean,
  verb: 'update' | 'patch',
): {object: KubeObject; created: boolean} {
  const bodyName = input.metadata?.name ?? ''
  if (bodyName !== name) throw errors.badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`)
  ensureNamespace(def, ns, input)
  const b = s.bucket(def)
  const key = objKey(ns, name)
  const existing = b.objects.get(key)
  if (!existing) {
    if (subresource || !def.allowCreateOnUpdate || verb === 'patch') throw errors.notFound(def, name)
    const obj = clone(input)
    delete meta(obj).resourceVersion
    return {object: create(s, def, ns, obj, dryRun), created: true}
  }
  let obj = s.toStorage(def, clone(input))
  const m = meta(obj)
  const om = existing.metadata as KubeObject
  // Optimistic concurrency.
  const newRv = m.resourceVersion
  if (newRv === undefined || newRv === '' || newRv === null) {
    if (!def.allowUnconditionalUpdate) {
      throw errors.invalid(def.group, def.resource, name, [
        fe.invalid('metadata.resourceVersion', {goSyntax: '0x0'}, 'must be specified for an update'),
      ])
    }
  } else {
    if (!/^\d+$/.test(String(newRv))) {
      throw errors.badRequest(`metadata.resourceVersion: Invalid value: ${goQuote(String(newRv))}: must be a decimal integer`)
    }
    if (String(newRv) !== om.resourceVersion)
      throw errors.conflict(def, name, 'the object has been modified; please apply your changes to the latest version and try again')
  }
  // BeforeUpdate: system fields come from the stored object.
  m.resourceVersion = om.resourceVersion
  if (!m.uid) m.uid = om.uid
  m.creationTimestamp = om.creationTimestamp
  if (om.deletionTimestamp) m.deletionTimestamp = om.deletionTimestamp
  else delete m.deletionTimestamp
  if (om.deletionGracePeriodSeconds !== undefined) m.deletionGracePeriodSeconds = om.deletionGracePeriodSeconds
  else delete m.deletionGracePeriodSeconds
  delete m.selfLink
  if (om.generation !== undefined) m.generation = om.generation
  else delete m.generation
  if (subresource === 'status') {
    // Status strategy: everything but .status comes from the stored object.
    const status = obj.status
    obj = clone(existing)
    if (status !== undefined) obj.status = status
    else delete obj.status
  } else if (subresource === 'finalize') {
    const fin = obj.spec?.finalizers
    obj = clone(existing)
    obj.spec = {...(obj.spec ?? {})}
    if (fin) obj.spec.finalizers = fin
    else delete obj.spec.finalizers
  } else {
    if (def.statusSubresource) {
      if (existing.status !== undefined) obj.status = clone(existing.status)
      else delete obj.status
    }
    def.prepareForUpdate?.(obj, existing)
    if (def.generation && specChanged(def, obj, existing)) m.generation = (om.generation ?? 0) + 1
  }
  runValidation(s, def, obj, existing)
  // An object being deleted whose last finalizer was removed goes away now.
  const fin = (obj.metadata.finalizers as string[] | undefined) ?? []
  const nsFin = def.group === '' && def.resource === 'namespaces' ? ((obj.spec?.finalizers as string[] | undefined) ?? []) : []
  if (obj.metadata.deletionTimestamp && fin.length === 0 && nsFin.length === 0) {
    if (dryRun) return {object: s.toViewOrdered(def, existing), created: false}
    s.commit(b, 'DELETED', clone(existing), existing)
    return {object: s.toViewOrdered(def, existing), created: false}
  }
  if (deepEqual(obj, existing)) return {object: s.toViewOrdered(def, existing), created: false} // no-op: no write, no RV bump, no event
  if (dryRun) return {object: s.toViewOrdered(def, obj), created: false}
  const stored = s.commit(b, 'MODIFIED', obj, existing)
  return {object: s.toViewOrdered(def, stored), created: false}
}

export function patch(
  s: Server,
  req: IncomingMessage,
  def: Def,
  ns: string | undefined,
  name: string,
  subresource: string | undefined,
  body: Buffer,
  dryRun: boolean,
): KubeObject {
  const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  const accepted = def.custom
    ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]
    : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply]
  if (ct === PATCH_TYPES.apply) {
    // Server-side apply is NOT implemented by this test server (field ownership, managedFields,
    // conflicts...). Fail loudly with 415 rather than pretend.
    throw errors.unsupportedMediaType(accepted, ' (server-side apply is not supported by the kseal test API server)')
  }
  if (!accepted.includes(ct)) throw errors.unsupportedMediaType(accepted)
  let patchDoc: unknown
  try {
    patchDoc = JSON.parse(body.toString('utf8'))
  } catch (e) {
    throw errors.badRequest(e instanceof Error ? e.message : String(e))
  }
  const existing = s.bucket(def).objects.get(objKey(ns, name))
  if (!existing) throw errors.notFound(def, name)
  const current = s.toViewOrdered(def, existing)
  let patched: unknown
  if (ct === PATCH_TYPES.json) {
    try {
      patched = applyJsonPatch(current, patchDoc)
    } catch (e) {
      if (e instanceof JsonPatchApplyError) throw errors.genericInvalid()
      throw e
    }
  } else {
    if (!isObj(patchDoc)) throw errors.badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}')
    patched = ct === PATCH_TYPES.merge ? jsonMergePatch(current, patchDoc) : strategicMergePatch(current, patchDoc)
  }
  if (!isObj(patched)) throw errors.badRequest('the patched document is not a JSON object')
  if (patched.metadata?.name !== undefined && patched.metadata.name !== name) {
    throw errors.badRequest(`the name of the object (${patched.metadata.name}) does not match the name on the URL (${name})`)
  }
  // The apiserver reports decode failures of the patched object as 422 `patch: Invalid value`:
  // JSON/merge patches quote the patched object, strategic merge patches the patch as a Go map.
  const mode =
    ct === PATCH_TYPES.strategic
      ? {patchValue: goMapFormat(patchDoc), errorPrefix: 'error decoding from json: '}
      : {patchValue: JSON.stringify(patched), errorPrefix: ''}
  const {obj} = decodeTyped(s, def, patched, undefined, mode)
  // A patch that drops metadata.resourceVersion is unconditional; one that sets it is a precondition.
  return update(s, def, ns, name, subresource, obj, dryRun, 'patch').object
}

export function deleteOptions(body: Buffer, q: Record<string, string>, dryRun: boolean): DeleteOptions {
  let o: KubeObject = {}
  if (body.length) {
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'))
      if (isObj(parsed)) o = parsed
    } catch {
      throw errors.badRequest("couldn't get version/kind; json parse error")
    }
  }
  let policy: string | undefined = q.propagationPolicy ?? o.propagationPolicy
  const orphan = q.orphanDependents ?? o.orphanDependents
  if (policy === undefined && orphan !== undefined) policy = String(orphan) === 'true' ? 'Orphan' : 'Background'
  if (policy !== undefined && !['Foreground', 'Background', 'Orphan'].includes(policy)) {
    throw errors.invalid('meta.k8s.io', 'DeleteOptions', '', [
      fe.notSupported('propagationPolicy', policy, ['Foreground', 'Background', 'Orphan']),
    ])
  }
  const bodyDry = Array.isArray(o.dryRun) && o.dryRun.includes('All')
  return {propagationPolicy: policy, preconditions: isObj(o.preconditions) ? o.preconditions : undefined, dryRun: dryRun || bodyDry}
}

export function remove(s: Server, def: Def, ns: string | undefined, name: string, opts: DeleteOptions): KubeObject {
  const b = s.bucket(def)
  const existing = b.objects.get(objKey(ns, name))
  if (!existing) throw errors.notFound(def, name)
  const om = existing.metadata as KubeObject
  const pre = opts.preconditions
  if (pre?.uid && pre.uid !== om.uid) {
    throw errors.conflict(def, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${om.uid}`)
  }
  if (pre?.resourceVersion && pre.resourceVersion !== om.resourceVersion) {
    throw errors.conflict(
      def,
      name,
      `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${om.resourceVersion}`,
    )
  }
  if (om.deletionTimestamp) return s.toViewOrdered(def, existing) // deletion already in progress
  const finalizers = [...((om.finalizers as string[] | undefined) ?? [])]
  if (opts.propagationPolicy === 'Foreground' && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion')
  if (opts.propagationPolicy === 'Orphan' && !finalizers.includes('orphan')) finalizers.push('orphan')
  const isNamespace = def.group === '' && def.resource === 'namespaces'
  const nsFinalizers = isNamespace ? ((existing.spec?.finalizers as string[] | undefined) ?? []) : []
  if (finalizers.length || nsFinalizers.length) {
    // Graceful path: mark for deletion, finalizers (or the GC / namespace controller) finish it.
    const obj = clone(existing)
    obj.metadata.deletionTimestamp = nowTime()
    obj.metadata.deletionGracePeriodSeconds = 0
    if (finalizers.length) obj.metadata.finalizers = finalizers
    if (isNamespace) obj.status = {...(obj.status ?? {}), phase: 'Terminating'}
    if (opts.dryRun) return s.toViewOrdered(def, obj)
    return s.toViewOrdered(def, s.commit(b, 'MODIFIED', obj, existing))
  }
  if (!opts.dryRun) s.commit(b, 'DELETED', clone(existing), existing)
  if (def.returnDeletedObject) return s.toViewOrdered(def, existing)
  const details: KubeObject = {name, ...(def.group ? {group: def.group} : {}), kind: def.resource, uid: om.uid}
  return {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details}
}
