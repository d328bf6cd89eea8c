/** JSON patch (RFC 6902), JSON merge patch (RFC 7386) and the strategic merge patch subset the server knows. */
import {errors} from './status.js'
import type {KubeObject} from './types.js'
import {clone, deepEqual, isObj} from './util.js'

export function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch)
  const out: KubeObject = isObj(target) ? {...target} : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = jsonMergePatch(out[k], v)
  }
  return out
}

/**
 * Strategic merge patch, good enough for the types served here: maps merge like JSON merge patch,
 * `$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/<f>` are honoured,
 * `$setElementOrder/<f>` is ignored, metadata.finalizers merges as a set and
 * metadata.ownerReferences merges by uid; every other list is replaced (true for Secret, Lease,
 * Event and Namespace, which have no other merge-keyed lists that matter here).
 */
export function strategicMergePatch(target: unknown, patch: unknown, path: string[] = []): unknown {
  if (!isObj(patch)) return clone(patch)
  if (patch.$patch === 'replace') {
    const {$patch: _ignored, ...rest} = patch
    return clone(rest)
  }
  const out: KubeObject = isObj(target) ? {...target} : {}
  const retain = Array.isArray(patch.$retainKeys) ? (patch.$retainKeys as string[]) : undefined
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length)
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as unknown[]).filter((x) => !v.some((y) => deepEqual(x, y)))
      continue
    }
    if (v === null) {
      delete out[k]
      continue
    }
    if (isObj(v) && v.$patch === 'delete') {
      delete out[k]
      continue
    }
    const p = [...path, k].join('.')
    if (Array.isArray(v) && p === 'metadata.finalizers') {
      const cur = Array.isArray(out[k]) ? [...(out[k] as unknown[])] : []
      for (const x of v) if (!cur.some((y) => deepEqual(x, y))) cur.push(x)
      out[k] = cur
      continue
    }
    if (Array.isArray(v) && p === 'metadata.ownerReferences') {
      let cur = Array.isArray(out[k]) ? [...(out[k] as KubeObject[])] : []
      for (const item of v as KubeObject[]) {
        const idx = cur.findIndex((c) => c.uid === item.uid)
        if (item.$patch === 'delete') {
          cur = cur.filter((c) => c.uid !== item.uid)
        } else if (idx >= 0) {
          cur[idx] = jsonMergePatch(cur[idx], item) as KubeObject
        } else cur.push(clone(item))
      }
      out[k] = cur
      continue
    }
    out[k] = strategicMergePatch(out[k], v, [...path, k])
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k]
  return out
}

export class JsonPatchApplyError extends Error {}

export function decodePointer(ptr: string): string[] {
  if (ptr === '') return []
  if (!ptr.startsWith('/')) throw new JsonPatchApplyError(`JSON pointer must start with "/": ${ptr}`)
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

export function applyJsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch')
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string') throw errors.badRequest('Unexpected kind: unknown')
    if (typeof op.path !== 'string') throw errors.badRequest(`${op.op} operation missing path`)
  }
  let root = clone(doc)
  const container = (path: string[]): {parent: KubeObject | unknown[]; key: string} => {
    if (path.length === 0) throw new JsonPatchApplyError('cannot operate on the document root')
    let cur: unknown = root
    for (const p of path.slice(0, -1)) {
      if (Array.isArray(cur)) {
        const i = Number(p)
        if (!/^\d+$/.test(p) || i >= cur.length) throw new JsonPatchApplyError(`doc is missing path: ${p}`)
        cur = cur[i]
      } else if (isObj(cur)) {
        if (!(p in cur)) throw new JsonPatchApplyError(`doc is missing path: ${p}`)
        cur = cur[p]
      } else throw new JsonPatchApplyError(`doc is missing path: ${p}`)
    }
    if (!Array.isArray(cur) && !isObj(cur)) throw new JsonPatchApplyError('doc is missing path')
    return {parent: cur, key: path[path.length - 1]!}
  }
  const get = (path: string[]): unknown => {
    let cur: unknown = root
    for (const p of path) {
      if (Array.isArray(cur) && /^\d+$/.test(p) && Number(p) < cur.length) cur = cur[Number(p)]
      else if (isObj(cur) && p in cur) cur = cur[p]
      else throw new JsonPatchApplyError(`doc is missing key: /${path.join('/')}`)
    }
    return cur
  }
  const add = (path: string[], value: unknown) => {
    if (path.length === 0) {
      root = clone(value)
      return
    }
    const {parent, key} = container(path)
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key)
      if (!(key === '-' || /^\d+$/.test(key)) || i > parent.length) throw new JsonPatchApplyError(`index out of bounds: ${key}`)
      parent.splice(i, 0, clone(value))
    } else parent[key] = clone(value)
  }
  const remove = (path: string[]): unknown => {
    const {parent, key} = container(path)
    if (Array.isArray(parent)) {
      const i = Number(key)
      if (!/^\d+$/.test(key) || i >= parent.length)
        throw new JsonPatchApplyError(`remove operation does not apply: doc is missing key: ${key}`)
      return parent.splice(i, 1)[0]
    }
    if (!(key in parent)) throw new JsonPatchApplyError(`remove operation does not apply: doc is missing key: ${key}`)
    const v = parent[key]
    delete parent[key]
    return v
  }
  for (const op of ops as KubeObject[]) {
    const path = decodePointer(op.path as string)
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw errors.badRequest('add operation missing value')
        add(path, op.value)
        break
      case 'remove':
        remove(path)
        break
      case 'replace':
        if (!('value' in op)) throw errors.badRequest('replace operation missing value')
        if (path.length === 0) {
          root = clone(op.value)
          break
        }
        get(path)
        remove(path)
        add(path, op.value)
        break
      case 'move': {
        if (typeof op.from !== 'string') throw errors.badRequest('move operation missing from')
        const v = remove(decodePointer(op.from))
        add(path, v)
        break
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw errors.badRequest('copy operation missing from')
        add(path, get(decodePointer(op.from)))
        break
      }
      case 'test': {
        let v: unknown
        try {
          v = get(path)
        } catch {
          v = undefined
        }
        if (!deepEqual(v, op.value)) throw new JsonPatchApplyError(`testing value ${op.path} failed: test failed`)
        break
      }
      default:
        throw errors.badRequest(`Unexpected kind: ${String(op.op)}`)
    }
  }
  return root
}

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
}
