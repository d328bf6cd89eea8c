/**
 * Regular expressions that a namespace admin writes (`dataFrom[].find.name.regexp`) or a cluster
 * admin writes (`conditions[].namespaceRegexes`), matched against names that the store or the
 * cluster returns. external-secrets compiles them with Go's regexp (RE2); so does kseal, with
 * re2js, RE2's own algorithm in JavaScript: the same syntax, and matching in time linear in the
 * name, so no pattern can stall the controller. (The guard the SOPS reader uses on JavaScript
 * regexps, refusing nested repetition, still lets `(a|a)*$` or `.*.*.*.*x` take seconds on a long
 * name; a backtracking engine cannot be made safe by inspecting patterns.) Patterns and the program
 * they compile to are bounded in size.
 */
import {RE2JS} from 're2js'
import {KsealError} from './errors.js'

const MAX_PATTERN_LENGTH = 512
/** RE2's own "cost" measure; a 512-character pattern of ordinary shape stays far below it. */
const MAX_PROGRAM_SIZE = 10_000

export interface NameMatcher {
  readonly source: string
  /** True when the pattern matches anywhere in the name (Go's regexp.MatchString). */
  test(name: string): boolean
}

/** Compiles an RE2 pattern, or refuses it naming the field: `what` is e.g. `dataFrom[0].find.name.regexp`. */
export function compileRe2(source: string, what: string): NameMatcher {
  const refuse = (why: string) => new KsealError('ERR_INPUT', `${what} ${JSON.stringify(source.slice(0, 80))}: ${why}`)
  if (source.length > MAX_PATTERN_LENGTH) throw refuse(`longer than ${MAX_PATTERN_LENGTH} characters`)
  let re: RE2JS
  try {
    re = RE2JS.compile(source)
  } catch (e) {
    throw refuse(
      `not an RE2 regular expression: ${String((e as Error).message)
        .replace(/^error parsing regexp: /, '')
        .slice(0, 120)}`,
    )
  }
  if (re.programSize() > MAX_PROGRAM_SIZE) throw refuse('too complex (its compiled program is too large)')
  return {source, test: (name: string) => re.test(name)}
}
