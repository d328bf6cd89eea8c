/** Small helpers of the Kubernetes API test server. */
import type {KubeObject, ResourceDefinition} from './types.js'

export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T)
}

export function isObj(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`
  if (isObj(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b)
}

export function nowTime(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z')
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export function parseGroupVersion(apiVersion: string): {group: string; version: string} {
  const i = apiVersion.indexOf('/')
  return i < 0 ? {group: '', version: apiVersion} : {group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1)}
}

export function apiVersionOf(def: ResourceDefinition): string {
  return def.group ? `${def.group}/${def.version}` : def.version
}

export function objKey(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`
}

export function meta(o: KubeObject): KubeObject {
  if (!isObj(o.metadata)) o.metadata = {}
  return o.metadata as KubeObject
}
