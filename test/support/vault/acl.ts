/**
 * Vault ACL policies, as much as the test Vault needs: path rules with capabilities, matched the
 * way Vault does (exact paths, a trailing `*` for a prefix, `+` for one segment; the most specific
 * matching pattern wins, its capabilities merged across the token's policies; `deny` beats all),
 * and the built-in `root` and `default` policies.
 */
export type Capability = 'create' | 'read' | 'update' | 'patch' | 'delete' | 'list' | 'sudo' | 'deny'

/** path pattern → capabilities, e.g. {'secret/data/team-a/*': ['read']}. */
export type Policy = Record<string, Capability[]>

/** What Vault's `default` policy lets every token do to itself. */
export const DEFAULT_POLICY: Policy = {
  'auth/token/lookup-self': ['read'],
  'auth/token/renew-self': ['update'],
  'auth/token/revoke-self': ['update'],
  'sys/capabilities-self': ['update'],
}

function matches(pattern: string, path: string): boolean {
  const glob = pattern.endsWith('*')
  const body = glob ? pattern.slice(0, -1) : pattern
  const want = body.split('/')
  const have = path.split('/')
  if (glob ? have.length < want.length : have.length !== want.length) return false
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!
    const h = have[i]!
    const last = i === want.length - 1
    if (w === '+') {
      if (h === '' && !(glob && last)) return false
      continue
    }
    if (glob && last ? !h.startsWith(w) : h !== w) return false
  }
  return true
}

/** Higher is more specific (Vault's priority rules, simplified: literal characters, then no glob, then fewer `+`). */
function specificity(pattern: string): [number, number, number] {
  const plus = pattern.split('/').filter((s) => s === '+').length
  return [pattern.replace(/\*$/, '').replace(/\+/g, '').length, pattern.endsWith('*') ? 0 : 1, -plus]
}

function moreSpecific(a: string, b: string): boolean {
  const [x, y] = [specificity(a), specificity(b)]
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! > y[i]!
  return false
}

/** The capabilities a set of policies grants on `path` (root: everything). */
export function capabilities(policyNames: string[], lookup: (name: string) => Policy | undefined, path: string): Set<Capability> {
  if (policyNames.includes('root')) return new Set(['create', 'read', 'update', 'patch', 'delete', 'list', 'sudo'])
  let best: string | undefined
  const found: [string, Capability[]][] = []
  for (const name of policyNames) {
    const policy = name === 'default' ? (lookup('default') ?? DEFAULT_POLICY) : lookup(name)
    for (const [pattern, caps] of Object.entries(policy ?? {})) {
      if (!matches(pattern, path)) continue
      found.push([pattern, caps])
      if (best === undefined || moreSpecific(pattern, best)) best = pattern
    }
  }
  const caps = new Set(found.filter(([p]) => p === best).flatMap(([, c]) => c))
  return caps.has('deny') ? new Set() : caps
}
