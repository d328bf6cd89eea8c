/**
 * Which values of a SOPS file are encrypted: sops's `shouldBeEncrypted`. At most one rule is set
 * (`unencrypted_suffix` by default, `_unencrypted`); a value is judged by the map keys on its path,
 * so a rule that matches a key covers everything below it.
 *
 * Regular expressions come from the file, so they are untrusted: they are compiled as JavaScript
 * (Go's RE2 syntax is, for what sops users write, the same language; a leading `(?i)` becomes the
 * `i` flag, anything JavaScript cannot compile is refused), limited in length, and refused when a
 * quantified group contains another quantifier — the shape that makes a backtracking engine take
 * exponential time on a long key.
 */
import {KsealError} from '../../errors.js'

export const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted'
const MAX_REGEX_LENGTH = 512

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
    throw new KsealError('ERR_INTEGRITY', 'malformed SOPS metadata: more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex and unencrypted_regex is set')
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
export function goRegex(source: string, field: string): RegExp {
  const refuse = (why: string) => new KsealError('ERR_INPUT', `SOPS ${field} ${JSON.stringify(source.slice(0, 80))}: ${why}`)
  if (source.length > MAX_REGEX_LENGTH) throw refuse(`longer than ${MAX_REGEX_LENGTH} characters`)
  let flags = 'u'
  let body = source
  const inline = /^\(\?([imsU]+)\)/.exec(body)
  if (inline) {
    if (/[mU]/.test(inline[1])) throw refuse('its inline flags are not supported (only i and s)')
    flags += inline[1]
    body = body.slice(inline[0].length)
  }
  if (nestedQuantifier(body)) throw refuse('a repeated group contains another repetition (catastrophic backtracking); simplify it')
  if (/\[[^\]]*\[:/.test(body)) throw refuse('POSIX character classes ([[:alpha:]]) mean something else to JavaScript')
  // RE2 lets any punctuation be escaped; Unicode-mode JavaScript only its own syntax characters, so
  // other escaped punctuation is written as the code point it stands for.
  body = body.replace(/\\(.)/gsu, (all, c: string) => (/[\p{L}\p{N}\s^$\\.*+?()[\]{}|/]/u.test(c) ? all : `\\u{${c.codePointAt(0)!.toString(16)}}`))
  try {
    // Unicode mode: Go matches code points, as JavaScript does only in this mode.
    return new RegExp(body, flags)
  } catch {
    throw refuse('not a regular expression kseal can read (Go RE2 syntax beyond what JavaScript shares)')
  }
}

/** True when a quantified group itself contains a quantifier, like `(a+)+` or `(a|b*)*`. */
function nestedQuantifier(re: string): boolean {
  const stack: boolean[] = [] // per open group: does it contain a quantifier?
  let inClass = false
  for (let i = 0; i < re.length; i++) {
    const c = re[i]
    if (c === '\\') {
      i++
      continue
    }
    if (inClass) {
      if (c === ']') inClass = false
      continue
    }
    if (c === '[') inClass = true
    else if (c === '(') stack.push(false)
    else if (c === ')') {
      const inner = stack.pop() ?? false
      const next = re[i + 1]
      const quantified = next === '*' || next === '+' || next === '?' || next === '{'
      if (inner && quantified && next !== '?') return true
      if ((inner || quantified) && stack.length) stack[stack.length - 1] = true
    } else if ((c === '*' || c === '+' || c === '{') && stack.length) {
      stack[stack.length - 1] = true
    }
  }
  return false
}
