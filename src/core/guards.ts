/** Narrowing untrusted data (parsed YAML or JSON, API objects): the one definition of each check. */

/** A plain JSON object. */
export type Obj = Record<string, unknown>

/** True for a mapping: an object that is neither null nor an array. */
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** True for a Kubernetes List (`kind: ...List` with an `items` array). */
export const isList = (o: Obj): o is Obj & {items: unknown[]} =>
  typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)

/** A null-prototype record: key names such as `__proto__` or `valueOf` are just keys. */
export function dict<T>(entries: Iterable<[string, T]> = []): Record<string, T> {
  const out = Object.create(null) as Record<string, T>
  for (const [k, v] of entries) out[k] = v
  return out
}
