/**
 * Strict JSON syntax (RFC 8259), as kubectl reads a file that starts with `{`: Go's encoding/json,
 * which refuses trailing commas, comments, single quotes, unquoted keys and the rest of what YAML's
 * flow syntax would let through. Only validates — the `yaml` package still builds the documents —
 * and names what is wrong and where, never the text itself (it may be a secret). Iterative, so no
 * nesting depth can exhaust the stack.
 */

export interface JsonSyntaxError {
  /** Offset in the text of the first character that is wrong. */
  offset: number
  /** What is wrong, without quoting the input. */
  reason: string
}

const WS = new Set([' ', '\t', '\n', '\r'])
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/y
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y

/** The first syntax error of `text` read as exactly one JSON value (whitespace around it allowed), or null. */
export function jsonSyntaxError(text: string, from = 0): JsonSyntaxError | null {
  let i = from
  const fail = (reason: string, at = i): JsonSyntaxError => ({offset: at, reason})
  const skip = () => {
    while (i < text.length && WS.has(text[i])) i++
  }
  /** What stands where a value (or a key) should be, when it is not one. */
  const notValue = (c: string | undefined): string => {
    if (c === undefined) return 'the text ends where a value should be'
    if (c === '/' || c === '#') return 'a comment (JSON has none)'
    if (c === "'") return 'a single-quoted string (JSON strings use double quotes)'
    return 'not a JSON value'
  }
  const string = (): JsonSyntaxError | null => {
    const start = i++
    while (i < text.length) {
      const c = text[i]
      if (c === '"') {
        i++
        return null
      }
      if (c === '\\') {
        ESCAPE.lastIndex = i
        if (!ESCAPE.test(text)) return fail('an invalid escape in a string')
        i = ESCAPE.lastIndex
        continue
      }
      if (c < ' ') return fail(c === '\n' || c === '\r' ? 'a line break in a string' : 'a control character in a string')
      i++
    }
    return fail('a string that is never closed', start)
  }
  /** A scalar value at i, or an error; containers are handled by the loop below. */
  const scalar = (): JsonSyntaxError | null => {
    const c = text[i]
    if (c === '"') return string()
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length
        return null
      }
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i
      if (NUMBER.test(text)) {
        i = NUMBER.lastIndex
        return null
      }
      return fail('an invalid number')
    }
    return fail(notValue(c))
  }

  // Each open container: '{' or '['.
  const stack: string[] = []
  skip()
  for (;;) {
    // A value starts here.
    skip()
    const c = text[i]
    if (c === '{' || c === '[') {
      stack.push(c)
      i++
      skip()
      const close = c === '{' ? '}' : ']'
      if (text[i] === close) {
        stack.pop()
        i++
      } else if (c === '{') {
        const e = key()
        if (e) return e
        continue
      } else {
        continue
      }
    } else {
      const e = scalar()
      if (e) return e
    }
    // After a value: close containers, or go on to the next element.
    for (;;) {
      skip()
      const top = stack.at(-1)
      if (top === undefined) {
        return i < text.length ? fail('more than one JSON value, or text after it') : null
      }
      const close = top === '{' ? '}' : ']'
      if (text[i] === close) {
        stack.pop()
        i++
        continue
      }
      if (text[i] !== ',') return fail(text[i] === undefined ? `the text ends before a closing ${close}` : `expected , or ${close}`)
      i++
      skip()
      if (text[i] === '}' || text[i] === ']') return fail('a trailing comma (JSON allows none)', i)
      if (top === '{') {
        const e = key()
        if (e) return e
      }
      break
    }
  }

  /** A member's key and its colon; leaves i at the value. */
  function key(): JsonSyntaxError | null {
    if (text[i] !== '"') {
      const c = text[i]
      return fail(c !== undefined && /[A-Za-z_$]/.test(c) ? 'an unquoted key (JSON keys are double-quoted strings)' : notValue(c))
    }
    const e = string()
    if (e) return e
    skip()
    if (text[i] !== ':') return fail('expected : after a key')
    i++
    return null
  }
}
