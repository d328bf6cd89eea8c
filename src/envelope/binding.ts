/**
 * Where a Secret's values are bound (spec: docs/FORMAT.md): its scope and the parts of its place
 * that the scope binds. The envelope binds every value's AAD and its MAC to a Binding, and hands the
 * key backends the same binding as a KeyBinding — opaque bytes and an opaque string map — so no
 * backend knows about scopes or formats.
 */
import type {KeyBinding} from '../../keys/types.js'

export type Scope = 'strict' | 'namespace' | 'cluster'
export const SCOPES: readonly Scope[] = ['strict', 'namespace', 'cluster']

/**
 * Where a Secret's values are bound, reduced to what its scope binds. Format 1 (no `format`, or 1):
 * unbound parts are empty strings, taken from the manifest. Format 2: the identity recorded in the
 * envelope when it was encrypted; an unbound part is null (a namespace left open, or a part the scope
 * does not bind), which no real namespace or name can equal.
 */
export interface Binding {
  format?: 1 | 2
  scope: Scope
  namespace: string | null
  name: string | null
}

/**
 * The format 2 identity a Secret was encrypted as. `namespace` null: not bound (left open, or the
 * scope does not bind it); `name` null: the scope does not bind it.
 */
export interface EncryptedAs {
  namespace: string | null
  name: string | null
}

/**
 * The format 1 binding for a Secret at namespace/name under a scope: parts the scope does not bind
 * are empty strings.
 */
export function bindingFor(scope: Scope, namespace: string, name: string): Binding {
  switch (scope) {
    case 'strict':
      return {scope, namespace, name}
    case 'namespace':
      return {scope, namespace, name: ''}
    case 'cluster':
      return {scope, namespace: '', name: ''}
  }
}

/**
 * The format 2 identity a Secret is encrypted as: what its scope binds of its namespace and name. An
 * empty namespace (none in the manifest) is left open, so an overlay that sets one still decrypts.
 */
export function encryptedAsFor(scope: Scope, namespace: string, name: string): EncryptedAs {
  return {
    namespace: scope === 'cluster' || namespace === '' ? null : namespace,
    name: scope === 'strict' ? name : null,
  }
}

/** The format 2 binding of an identity. */
export function bindingV2(scope: Scope, as: EncryptedAs): Binding {
  return {format: 2, scope, namespace: as.namespace, name: as.name}
}

/**
 * The bytes a wrapped data key is bound to (RSA-OAEP label, appended to the age and PGP plaintext):
 * the format version, the scope and the parts of the Secret's place that the scope binds. Format 2
 * has its own domain string, so no wrapped key of one format opens under the other.
 */
export function bindingLabel(b: Binding): Buffer {
  const tag = b.format === 2 ? 'kseal/v2 data key' : 'kseal/v1 data key'
  return Buffer.from(JSON.stringify([tag, b.scope, b.namespace, b.name]), 'utf8')
}

/**
 * The binding as a string map, what AWS KMS checks on Decrypt (EncryptionContext) and logs in
 * CloudTrail. Format 2 adds `kseal:format` (so no format 1 wrapped key opens as format 2) and leaves
 * out the parts that are not bound (an open namespace); the scope tells which those are.
 */
export function encryptionContext(b: Binding): Record<string, string> {
  const ctx: Record<string, string> = b.format === 2 ? {'kseal:format': '2', 'kseal:scope': b.scope} : {'kseal:scope': b.scope}
  if (b.namespace) ctx['kseal:namespace'] = b.namespace
  if (b.name) ctx['kseal:name'] = b.name
  return ctx
}

/** What the key backends get: the binding as bytes and as a string map, neither of which they interpret. */
export function keyBinding(b: Binding): KeyBinding {
  return {label: bindingLabel(b), context: encryptionContext(b)}
}

/** How an identity reads in messages: `prod/db`, `db (any namespace)`, `namespace prod`, `any namespace`. */
export function describeIdentity(scope: Scope, as: EncryptedAs): string {
  if (scope === 'cluster') return 'anywhere (cluster scope)'
  if (scope === 'namespace')
    return as.namespace === null ? 'any namespace (namespace scope, namespace left open)' : `namespace ${as.namespace}`
  return as.namespace === null ? `${as.name} (in any namespace)` : `${as.namespace}/${as.name}`
}
