/**
 * The functions of kseal's template language: Go's template builtins and the sprig functions that
 * external-secrets templates use most, with the same argument order and results. None reads a file,
 * the environment, the network or the clock; none makes randomness. Every string a function returns
 * is checked against the value size limit, every list against the list limit, so no chain of calls
 * can build an unbounded value. Differences from sprig (a bad input is an error, not an empty or
 * error-text result) are listed in docs/external-secrets.md.
 */
import {createHash} from 'node:crypto'
import {JsonSyntaxError, parseJson} from '../property.js'
import {
  decodeText,
  encodeText,
  formatValue,
  fromBytes,
  fromJsonNode,
  goQuote,
  toBytes,
  toJson,
  truth,
  typeName,
  type Value,
} from './values.js'

export interface CallContext {
  /** Fails the call with a message (the caller adds template, line and column). */
  fail(message: string): never
  /** Checks a string result against the value size limit and returns it. */
  sized(s: string): string
}

export interface TemplateFunction {
  min: number
  /** Infinity for variadic. */
  max: number
  fn: (args: (Value | undefined)[], c: CallContext) => Value | undefined
}

/** Largest list a function builds (splitList of a long string, ...). */
export const MAX_LIST = 10_000

/** sprig's strval: a string as is, anything else as %v prints it. */
function str(v: Value | undefined): string {
  return typeof v === 'string' ? v : formatValue(v)
}

function needString(name: string, v: Value | undefined, c: CallContext): string {
  if (typeof v !== 'string') c.fail(`${name}: expected a string, got ${typeName(v)}`)
  return v as string
}

function needInt(name: string, v: Value | undefined, c: CallContext): number {
  if (typeof v !== 'bigint' || v < 0n || v > 10_000n) c.fail(`${name}: expected an integer from 0 to 10000, got ${typeName(v)}`)
  return Number(v)
}

/** sprig's empty: nil, false, 0, and empty strings and collections. */
const empty = (v: Value | undefined) => !truth(v)

/** Go's base64.StdEncoding / URLEncoding: padding required, CR and LF ignored, anything else refused. */
export function goBase64Decode(s: string, url: boolean): Buffer | undefined {
  const t = s.replace(/[\r\n]/g, '')
  const alphabet = url ? /^[A-Za-z0-9_-]*={0,2}$/ : /^[A-Za-z0-9+/]*={0,2}$/
  if (t.length % 4 !== 0 || !alphabet.test(t)) return undefined
  return Buffer.from(t, url ? 'base64url' : 'base64')
}

const lines = (s: string) => s.split('\n')

/** quote and squote: each argument but nil as text, quoted by `q`, space-separated. */
const quoteEach = (args: (Value | undefined)[], c: CallContext, q: (s: string) => string): string =>
  c.sized(
    args
      .filter((x) => x !== null && x !== undefined)
      .map((x) => q(str(x)))
      .join(' '),
  )

function compare(name: string, a: Value | undefined, b: Value | undefined, c: CallContext): number {
  const ta = typeName(a)
  const tb = typeName(b)
  if (ta !== tb) c.fail(`${name}: incompatible types for comparison (${ta} and ${tb})`)
  if (typeof a === 'string' || typeof a === 'number' || typeof a === 'bigint') return a < (b as typeof a) ? -1 : a > (b as typeof a) ? 1 : 0
  if (typeof a === 'boolean' && (name === 'eq' || name === 'ne')) return a === b ? 0 : 1
  return c.fail(`${name}: invalid type for comparison (${ta})`)
}

function printf(format: string, args: (Value | undefined)[], c: CallContext): string {
  let out = ''
  let n = 0
  for (let i = 0; i < format.length; i++) {
    const ch = format[i]
    if (ch !== '%') {
      out += ch
      continue
    }
    const verb = format[++i]
    if (verb === '%') {
      out += '%'
      continue
    }
    if (verb === undefined) c.fail('printf: the format ends with a lone %')
    if (n >= args.length) {
      out += `%!${verb}(MISSING)`
      continue
    }
    const a = args[n++]
    switch (verb) {
      case 's':
      case 'v':
        out += str(a)
        break
      case 'd':
        if (typeof a !== 'bigint') c.fail(`printf: %d needs an integer, got ${typeName(a)}`)
        out += (a as bigint).toString()
        break
      case 'q':
        if (typeof a !== 'string') c.fail(`printf: %q needs a string, got ${typeName(a)}`)
        out += goQuote(a as string)
        break
      default:
        c.fail(`printf: the verb %${verb} is not supported (only %s, %v, %d, %q and %%)`)
    }
  }
  if (n < args.length)
    out += `%!(EXTRA ${args
      .slice(n)
      .map((a) => `${typeName(a)}=${str(a)}`)
      .join(', ')})`
  return c.sized(out)
}

/** Go's fmt.Sprint: a space between operands when neither side is a string. */
function sprint(args: (Value | undefined)[]): string {
  let out = ''
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string') out += ' '
    out += str(a)
  })
  return out
}

/** toJson and its kin: json.Marshal's output, or its error (a NaN, say) as the function's failure. */
function jsonFunction(name: string, encode: (v: Value | undefined) => string): TemplateFunction {
  return {
    min: 1,
    max: 1,
    fn: ([a], c) => {
      try {
        return c.sized(encode(a))
      } catch (e) {
        return c.fail(`${name}: ${(e as Error).message}`)
      }
    },
  }
}

export const FUNCTIONS: Record<string, TemplateFunction> = {
  // ---- Go's builtins (and / or are evaluated lazily by the executor) ----
  and: {min: 1, max: Infinity, fn: (a) => a.find((x) => !truth(x)) ?? a[a.length - 1]},
  or: {min: 1, max: Infinity, fn: (a) => a.find((x) => truth(x)) ?? a[a.length - 1]},
  not: {min: 1, max: 1, fn: ([a]) => !truth(a)},
  eq: {min: 2, max: Infinity, fn: ([a, ...rest], c) => rest.some((b) => compare('eq', a, b, c) === 0)},
  ne: {min: 2, max: 2, fn: ([a, b], c) => compare('ne', a, b, c) !== 0},
  lt: {min: 2, max: 2, fn: ([a, b], c) => compare('lt', a, b, c) < 0},
  le: {min: 2, max: 2, fn: ([a, b], c) => compare('le', a, b, c) <= 0},
  gt: {min: 2, max: 2, fn: ([a, b], c) => compare('gt', a, b, c) > 0},
  ge: {min: 2, max: 2, fn: ([a, b], c) => compare('ge', a, b, c) >= 0},
  len: {
    min: 1,
    max: 1,
    fn: ([a], c) => {
      if (typeof a === 'string' || Array.isArray(a)) return BigInt(a.length)
      if (a instanceof Map) return BigInt(a.size)
      return c.fail(`len of ${typeName(a)}`)
    },
  },
  index: {
    min: 1,
    max: Infinity,
    fn: ([coll, ...keys], c) => {
      let v = coll
      for (const k of keys) {
        if (v instanceof Map) {
          if (typeof k !== 'string') c.fail(`index: a map key must be a string, got ${typeName(k)}`)
          v = v.has(k as string) ? v.get(k as string) : null
        } else if (Array.isArray(v) || typeof v === 'string') {
          if (typeof k !== 'bigint') c.fail(`index: an index must be an integer, got ${typeName(k)}`)
          const i = Number(k)
          if (i < 0 || i >= v.length) c.fail(`index: index out of range: ${i}`)
          v = typeof v === 'string' ? BigInt(v.charCodeAt(i)) : v[i]
        } else if (v === null || v === undefined) {
          c.fail('index of untyped nil')
        } else {
          c.fail(`can't index item of type ${typeName(v)}`)
        }
      }
      return v
    },
  },
  print: {min: 0, max: Infinity, fn: (a, c) => c.sized(sprint(a))},
  println: {min: 0, max: Infinity, fn: (a, c) => c.sized(a.map(str).join(' ') + '\n')},
  printf: {min: 1, max: Infinity, fn: ([f, ...a], c) => printf(needString('printf', f, c), a, c)},

  // ---- sprig ----
  b64enc: {min: 1, max: 1, fn: ([a], c) => c.sized(toBytes(str(a)).toString('base64'))},
  b64dec: {
    min: 1,
    max: 1,
    fn: ([a], c) => {
      const b = goBase64Decode(str(a), false)
      if (!b) c.fail('b64dec: the value is not valid base64 (standard alphabet, padded)')
      return fromBytes(b!)
    },
  },
  // (typed explicitly: a property named toString loses the contextual type)
  toString: {min: 1, max: 1, fn: ([a]: (Value | undefined)[], c: CallContext) => c.sized(str(a))},
  upper: {min: 1, max: 1, fn: ([a], c) => c.sized(encodeText(decodeText(str(a)).toUpperCase()))},
  lower: {min: 1, max: 1, fn: ([a], c) => c.sized(encodeText(decodeText(str(a)).toLowerCase()))},
  trim: {min: 1, max: 1, fn: ([a]) => str(a).replace(/^[\t\n\v\f\r \x85\xa0]+|[\t\n\v\f\r \x85\xa0]+$/g, '')},
  trimAll: {
    min: 2,
    max: 2,
    fn: ([cut, a]) => {
      const set = new Set(str(cut))
      const s = str(a)
      let i = 0
      let j = s.length
      while (i < j && set.has(s[i])) i++
      while (j > i && set.has(s[j - 1])) j--
      return s.slice(i, j)
    },
  },
  trimPrefix: {min: 2, max: 2, fn: ([p, a]) => (str(a).startsWith(str(p)) ? str(a).slice(str(p).length) : str(a))},
  trimSuffix: {min: 2, max: 2, fn: ([p, a]) => (str(p) !== '' && str(a).endsWith(str(p)) ? str(a).slice(0, -str(p).length) : str(a))},
  quote: {min: 0, max: Infinity, fn: (a, c) => quoteEach(a, c, goQuote)},
  squote: {min: 0, max: Infinity, fn: (a, c) => quoteEach(a, c, (s) => `'${s}'`)},
  default: {min: 1, max: 2, fn: ([d, given]) => (given === undefined || empty(given) ? d : given)},
  empty: {min: 1, max: 1, fn: ([a]) => empty(a)},
  coalesce: {min: 0, max: Infinity, fn: (a) => a.find((x) => !empty(x)) ?? null},
  ternary: {min: 3, max: 3, fn: ([t, f, cond]) => (truth(cond) ? t : f)},
  toJson: jsonFunction('toJson', (a) => toJson(a)),
  toPrettyJson: jsonFunction('toPrettyJson', (a) => toJson(a, '  ')),
  toRawJson: jsonFunction('toRawJson', (a) => toJson(a, '', '', false)),
  fromJson: {
    min: 1,
    max: 1,
    fn: ([a], c) => {
      try {
        return fromJsonNode(parseJson(decodeText(needString('fromJson', a, c))))
      } catch (e) {
        if (e instanceof JsonSyntaxError) c.fail(`fromJson: not JSON: ${e.message}`)
        throw e
      }
    },
  },
  replace: {min: 3, max: 3, fn: ([o, n, a], c) => c.sized(str(a).split(str(o)).join(str(n)))},
  contains: {min: 2, max: 2, fn: ([sub, a]) => str(a).includes(str(sub))},
  hasPrefix: {min: 2, max: 2, fn: ([p, a]) => str(a).startsWith(str(p))},
  hasSuffix: {min: 2, max: 2, fn: ([p, a]) => str(a).endsWith(str(p))},
  splitList: {
    min: 2,
    max: 2,
    fn: ([sep, a], c) => {
      const s = str(a)
      const parts = str(sep) === '' ? [...decodeText(s)].map(encodeText) : s.split(str(sep))
      if (parts.length > MAX_LIST) c.fail(`splitList: more than ${MAX_LIST} parts`)
      return parts
    },
  },
  join: {
    min: 2,
    max: 2,
    fn: ([sep, list], c) => {
      if (!Array.isArray(list)) return c.sized(str(list))
      return c.sized(list.map(str).join(str(sep)))
    },
  },
  indent: {
    min: 2,
    max: 2,
    fn: ([n, a], c) =>
      c.sized(
        lines(str(a))
          .map((l) => ' '.repeat(needInt('indent', n, c)) + l)
          .join('\n'),
      ),
  },
  nindent: {
    min: 2,
    max: 2,
    fn: ([n, a], c) =>
      c.sized(
        '\n' +
          lines(str(a))
            .map((l) => ' '.repeat(needInt('nindent', n, c)) + l)
            .join('\n'),
      ),
  },
  list: {min: 0, max: Infinity, fn: (a) => a.map((x) => x ?? null)},
  dict: {
    min: 0,
    max: Infinity,
    fn: (a) => {
      const m = new Map<string, Value>()
      for (let i = 0; i < a.length; i += 2) m.set(str(a[i]), a[i + 1] ?? '')
      return m
    },
  },
  get: {
    min: 2,
    max: 2,
    fn: ([m, k], c) => {
      if (!(m instanceof Map)) c.fail(`get: expected a map, got ${typeName(m)}`)
      return (m as Map<string, Value>).has(str(k)) ? (m as Map<string, Value>).get(str(k))! : ''
    },
  },
  hasKey: {
    min: 2,
    max: 2,
    fn: ([m, k], c) => {
      if (!(m instanceof Map)) c.fail(`hasKey: expected a map, got ${typeName(m)}`)
      return (m as Map<string, Value>).has(str(k))
    },
  },
  keys: {
    min: 1,
    max: Infinity,
    fn: (a, c) => {
      const out: string[] = []
      for (const m of a) {
        if (!(m instanceof Map)) c.fail(`keys: expected a map, got ${typeName(m)}`)
        out.push(...(m as Map<string, Value>).keys())
      }
      return out.sort()
    },
  },
  sha256sum: {
    min: 1,
    max: 1,
    fn: ([a]) =>
      createHash('sha256')
        .update(toBytes(str(a)))
        .digest('hex'),
  },
}

/** Functions external-secrets offers that kseal refuses, with the reason. */
const REFUSED: Record<string, string> = {
  env: "reads the controller's environment",
  expandenv: "reads the controller's environment",
  getHostByName: 'makes a network call',
  now: 'reads the clock (the Secret would change on every refresh)',
  randAlphaNum: 'makes randomness (the Secret would change on every refresh)',
  randAlpha: 'makes randomness (the Secret would change on every refresh)',
  randNumeric: 'makes randomness (the Secret would change on every refresh)',
  randAscii: 'makes randomness (the Secret would change on every refresh)',
  uuidv4: 'makes randomness (the Secret would change on every refresh)',
  call: 'calls a function value',
}

export const FUNCTION_TABLE = {
  has: (name: string) => Object.hasOwn(FUNCTIONS, name),
  unsupported: (name: string) => {
    const why = Object.hasOwn(REFUSED, name) ? REFUSED[name] : undefined
    return `function ${JSON.stringify(name)} is not supported by kseal's template language${why ? ` (it ${why})` : ''}; docs/external-secrets.md lists the functions it has`
  },
}
