/**
 * Which values of a SOPS file are encrypted: sops's `shouldBeEncrypted`. At most one rule is set
 * (`unencrypted_suffix` by default, `_unencrypted`); a value is judged by the map keys on its path,
 * so a rule that matches a key covers everything below it.
 *
 * Regular expressions come from the file, so they are untrusted: they are compiled as RE2 — the
 * syntax sops itself uses (Go's regexp) — by re2js, which matches in time linear in the key, so no
 * pattern can stall a decrypt (a backtracking engine cannot be made safe by inspecting patterns:
 * `(a|a)*$x` passes any nesting check and still takes exponential time), and limited in size.
 */
import {KsealError} from '../../core/errors.js'
import {compileRe2, type NameMatcher} from '../../core/regex.js'

export const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted'

export interface RuleSpec {
  unencryptedSuffix?: string
  encryptedSuffix?: string
  unencryptedRegex?: string
  encryptedRegex?: string
}

export interface Rules {
  readonly spec: RuleSpec
  /** True when the value at this path (its map keys) is encrypted. */
  encrypted(path: readonly string[]): boolean
}

export function compileRules(spec: RuleSpec): Rules {
  const set = Object.entries(spec).filter(([, v]) => v !== undefined && v !== '')
  if (set.length > 1) {
    throw new KsealError(
      'ERR_INTEGRITY',
      'malformed SOPS metadata: more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex and unencrypted_regex is set',
    )
  }
  const effective: RuleSpec = set.length ? spec : {unencryptedSuffix: DEFAULT_UNENCRYPTED_SUFFIX}
  const {unencryptedSuffix, encryptedSuffix} = effective
  const unencryptedRegex = effective.unencryptedRegex ? goRegex(effective.unencryptedRegex, 'unencrypted_regex') : undefined
  const encryptedRegex = effective.encryptedRegex ? goRegex(effective.encryptedRegex, 'encrypted_regex') : undefined
  return {
    spec: effective,
    encrypted(path) {
      if (unencryptedSuffix) return !path.some((k) => k.endsWith(unencryptedSuffix))
      if (encryptedSuffix) return path.some((k) => k.endsWith(encryptedSuffix))
      if (unencryptedRegex) return !path.some((k) => unencryptedRegex.test(k))
      if (encryptedRegex) return path.some((k) => encryptedRegex.test(k))
      return true
    },
  }
}

/** A Go regular expression from a SOPS file as an equivalent JavaScript one, or a clear refusal. */
export function goRegex(source: string, field: string): NameMatcher {
  // sops compiles these with Go's regexp (RE2), and so does kseal (re2js): the same syntax, and
  // matching in time linear in the key, so a file's own regex cannot stall a decrypt.
  return compileRe2(source, `SOPS ${field}`)
}
