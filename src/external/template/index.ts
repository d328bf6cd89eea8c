/**
 * kseal's template language for `target.template.data`: the part of Go's text/template and
 * external-secrets' function set (engine v2) that templates for Secrets use — actions, pipelines,
 * variables, `if` / `else if` / `range` / `with`, the builtins and the sprig functions in funcs.ts —
 * and nothing that reaches outside: no files, environment, network, clock or randomness, no named
 * templates. Anything else is refused when the ExternalSecret is validated, naming the function or
 * construct and its line and column. Running is bounded in output size and steps (exec.ts).
 */
import {KsealError} from '../../core/errors.js'
import {DEFAULT_LIMITS, Executor, type Limits} from './exec.js'
import {FUNCTION_TABLE} from './funcs.js'
import {type Node, parse} from './parse.js'
import {encodeText, fromBytes, toBytes, type Value} from './values.js'

export type {Limits} from './exec.js'
export {DEFAULT_LIMITS} from './exec.js'

/** Largest template source, in bytes. */
export const MAX_TEMPLATE_SOURCE = 64 * 1024

export interface Template {
  readonly name: string
  /** Runs the template over the fetched values (Secret key → bytes); returns the bytes it produced. */
  execute(data: ReadonlyMap<string, Uint8Array>, limits?: Limits): Buffer
}

/** Parses a template (refusing what kseal does not support); `name` says where it is, for messages. */
export function compileTemplate(text: string, name: string): Template {
  const src = encodeText(text)
  if (src.length > MAX_TEMPLATE_SOURCE)
    throw new KsealError('ERR_INPUT', `${name}: the template is larger than ${MAX_TEMPLATE_SOURCE} bytes`)
  const nodes: Node[] = parse(src, name, FUNCTION_TABLE)
  return {
    name,
    execute(data, limits = DEFAULT_LIMITS) {
      const root = new Map<string, Value>([...data].map(([k, v]) => [encodeText(k), fromBytes(v)]))
      return toBytes(new Executor(src, name, root, limits).run(nodes))
    },
  }
}
