/**
 * The parser: tokens → a tree of text, actions and `if` / `range` / `with` blocks, as Go's
 * text/template/parse builds it. Functions must be known at parse time (Go's rule too), variables
 * must be declared before use, and nesting is bounded, so a template that parses is one kseal can
 * run. `define`, `template`, `block`, `break` and `continue` are refused.
 */
import {TemplateError} from './errors.js'
import {lex, type Token} from './lex.js'

export interface Pipe {
  /** Variables declared (`$x :=`, `$i, $e :=`) or assigned (`$x =`). */
  decl: string[]
  assign: boolean
  cmds: Cmd[]
  pos: number
}

export interface Cmd {
  args: Arg[]
  pos: number
}

export type Arg =
  | {t: 'field'; chain: string[]; pos: number}
  | {t: 'var'; name: string; chain: string[]; pos: number}
  | {t: 'dot'; pos: number}
  | {t: 'string'; value: string; pos: number}
  | {t: 'number'; value: number | bigint; pos: number}
  | {t: 'bool'; value: boolean; pos: number}
  | {t: 'nil'; pos: number}
  | {t: 'ident'; name: string; pos: number}
  | {t: 'pipe'; pipe: Pipe; chain: string[]; pos: number}

export interface BlockNode {
  t: 'if' | 'with' | 'range'
  pipe: Pipe
  list: Node[]
  else?: Node[]
  pos: number
}

export type Node = {t: 'text'; text: string} | {t: 'action'; pipe: Pipe; pos: number} | BlockNode

export const MAX_NESTING = 64

export interface FunctionTable {
  has(name: string): boolean
  /** Why a known-but-unsupported function (external-secrets has it, kseal does not) is refused. */
  unsupported(name: string): string | undefined
}

const REFUSED_KEYWORDS: Record<string, string> = {
  define: 'named templates ({{define}}) are not supported',
  template: 'named templates ({{template}}) are not supported',
  block: 'named templates ({{block}}) are not supported',
  break: '{{break}} is not supported',
  continue: '{{continue}} is not supported',
}

export function parse(src: string, name: string, funcs: FunctionTable): Node[] {
  return new Parser(src, name, lex(src, name), funcs).template()
}

class Parser {
  private i = 0
  private depth = 0
  /** Declared variables, innermost last; `$` is always there. */
  private readonly vars: string[] = ['$']

  constructor(
    private readonly src: string,
    private readonly name: string,
    private readonly toks: Token[],
    private readonly funcs: FunctionTable,
  ) {}

  private fail(pos: number, msg: string): never {
    throw new TemplateError(this.name, this.src, pos, msg)
  }

  private peek(k = 0): Token {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)]
  }

  private next(): Token {
    const t = this.peek()
    if (this.i < this.toks.length - 1) this.i++
    return t
  }

  private expect(type: Token['type'], what: string): Token {
    const t = this.next()
    if (t.type !== type) this.fail(t.pos, `unexpected ${describe(t)}; expected ${what}`)
    return t
  }

  private nest(pos: number): void {
    if (++this.depth > MAX_NESTING) this.fail(pos, `nested more than ${MAX_NESTING} levels deep`)
  }

  template(): Node[] {
    const {list, end} = this.list()
    if (end) this.fail(end.pos, `unexpected {{${end.value}}}`)
    return list
  }

  /** Nodes until EOF or an `{{end}}` / `{{else ...}}` (returned, with `else` positioned after its keyword). */
  private list(): {list: Node[]; end?: Token} {
    const list: Node[] = []
    for (;;) {
      const t = this.next()
      if (t.type === 'eof') return {list}
      if (t.type === 'text') {
        list.push({t: 'text', text: t.value})
        continue
      }
      // t is `{{`
      const k = this.peek()
      if (k.type === 'ident' && (k.value === 'end' || k.value === 'else')) {
        this.next()
        if (k.value === 'end') this.expect('right', '}}')
        return {list, end: k}
      }
      if (k.type === 'ident' && (k.value === 'if' || k.value === 'with' || k.value === 'range')) {
        this.next()
        list.push(this.block(k.value, k.pos))
        continue
      }
      if (k.type === 'ident' && Object.hasOwn(REFUSED_KEYWORDS, k.value)) this.fail(k.pos, REFUSED_KEYWORDS[k.value])
      const pipe = this.pipeline('action', false)
      this.expect('right', '}}')
      list.push({t: 'action', pipe, pos: t.pos})
    }
  }

  private block(kind: 'if' | 'with' | 'range', pos: number): Node {
    this.nest(pos)
    // A variable lives until the block's {{end}}; the else branch sees the pipeline's, not the body's.
    const mark = this.vars.length
    const pipe = this.pipeline(kind, kind === 'range')
    const afterPipe = this.vars.length
    this.expect('right', '}}')
    const body = this.list()
    const node: Node = {t: kind, pipe, list: body.list, pos}
    if (!body.end) this.fail(pos, `unexpected EOF: {{${kind}}} has no {{end}}`)
    if (body.end.value === 'else') {
      this.vars.length = afterPipe
      // `{{else if ...}}` / `{{else with ...}}` is an else branch holding one nested block.
      const k = this.peek()
      if ((kind === 'if' && k.type === 'ident' && k.value === 'if') || (kind === 'with' && k.type === 'ident' && k.value === 'with')) {
        this.next()
        node.else = [this.block(kind, k.pos)]
      } else {
        this.expect('right', '}}')
        const alt = this.list()
        if (!alt.end || alt.end.value !== 'end') this.fail(alt.end?.pos ?? this.src.length, `{{${kind}}}: expected {{end}} after {{else}}`)
        node.else = alt.list
      }
    }
    this.vars.length = mark
    this.depth--
    return node
  }

  private pipeline(context: string, range: boolean): Pipe {
    const pos = this.peek().pos
    const decl: string[] = []
    let assign = false
    // Declarations: `$x :=`, `$x =`, and in range `$i, $e :=`.
    if (this.peek().type === 'variable' && ['declare', 'assign', 'comma'].includes(this.peek(1).type)) {
      const v = this.next()
      const op = this.next()
      if (op.type === 'comma') {
        if (!range) this.fail(op.pos, 'too many declarations')
        const v2 = this.expect('variable', 'a variable')
        const op2 = this.next()
        if (op2.type !== 'declare' && op2.type !== 'assign') this.fail(op2.pos, 'expected := after range variables')
        decl.push(v.value, v2.value)
        assign = op2.type === 'assign'
      } else {
        decl.push(v.value)
        assign = op.type === 'assign'
      }
      for (const d of decl) {
        if (d === '$') this.fail(v.pos, 'cannot declare $')
        if (assign && !this.vars.includes(d)) this.fail(v.pos, `undefined variable ${JSON.stringify(d)}`)
      }
    }
    const cmds: Cmd[] = []
    for (;;) {
      cmds.push(this.command())
      if (this.peek().type !== 'pipe') break
      this.next()
    }
    if (!assign) this.vars.push(...decl)
    for (const [i, c] of cmds.entries()) {
      const first = c.args[0]
      if (i > 0 && first.t !== 'ident') this.fail(first.pos, 'non-function command in pipeline stage')
    }
    if (cmds.length === 0) this.fail(pos, `missing value for ${context}`)
    return {decl, assign, cmds, pos}
  }

  private command(): Cmd {
    const pos = this.peek().pos
    const args: Arg[] = []
    for (;;) {
      const t = this.peek()
      if (t.type === 'right' || t.type === 'pipe' || t.type === 'rparen' || t.type === 'eof') break
      args.push(this.operand())
    }
    if (args.length === 0) this.fail(pos, `missing value for command (${describe(this.peek())})`)
    if (args.length > 1 && args[0].t !== 'ident') this.fail(args[1].pos, `can't give argument to non-function ${argText(args[0])}`)
    return {args, pos}
  }

  private operand(): Arg {
    const t = this.next()
    let arg: Arg
    switch (t.type) {
      case 'field':
        arg = {t: 'field', chain: [t.value], pos: t.pos}
        break
      case 'variable':
        if (!this.vars.includes(t.value)) this.fail(t.pos, `undefined variable ${JSON.stringify(t.value)}`)
        arg = {t: 'var', name: t.value, chain: [], pos: t.pos}
        break
      case 'dot':
        return {t: 'dot', pos: t.pos}
      case 'string':
        return {t: 'string', value: t.value, pos: t.pos}
      case 'bool':
        return {t: 'bool', value: t.value === 'true', pos: t.pos}
      case 'nil':
        return {t: 'nil', pos: t.pos}
      case 'number':
        return {t: 'number', value: numberValue(t.value, () => this.fail(t.pos, `bad number syntax: ${t.value}`)), pos: t.pos}
      case 'ident':
        if (Object.hasOwn(REFUSED_KEYWORDS, t.value) || ['if', 'else', 'end', 'range', 'with'].includes(t.value))
          this.fail(t.pos, `unexpected keyword ${t.value} in operand`)
        if (!this.funcs.has(t.value)) {
          const why = this.funcs.unsupported(t.value)
          this.fail(t.pos, why ?? `function ${JSON.stringify(t.value)} not defined`)
        }
        return {t: 'ident', name: t.value, pos: t.pos}
      case 'lparen': {
        this.nest(t.pos)
        const pipe = this.pipeline('parenthesized pipeline', false)
        const close = this.expect('rparen', ')')
        this.depth--
        arg = {t: 'pipe', pipe, chain: [], pos: t.pos}
        // A field chain may follow the closing parenthesis directly: (pipeline).Field
        let end = close.pos + 1
        while (this.peek().type === 'field' && this.peek().pos === end) {
          const f = this.next()
          arg.chain.push(f.value)
          end = f.pos + 1 + f.value.length
        }
        return arg
      }
      default:
        return this.fail(t.pos, `unexpected ${describe(t)} in operand`)
    }
    // .a.b and $x.a.b: adjacent field tokens make one chain.
    let end = t.pos + (t.type === 'field' ? 1 : 0) + t.value.length
    while (this.peek().type === 'field' && this.peek().pos === end) {
      const f = this.next()
      arg.chain.push(f.value)
      end = f.pos + 1 + f.value.length
    }
    return arg
  }
}

function numberValue(text: string, bad: () => never): number | bigint {
  const clean = text.replace(/_/g, '')
  if (/^[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)$/.test(clean)) {
    const neg = clean.startsWith('-')
    const body = clean
      .replace(/^[+-]/, '')
      .replace(/^0[oO]/, '0o')
      .replace(/^0([0-7]+)$/, '0o$1')
    try {
      const v = BigInt(body)
      return neg ? -v : v
    } catch {
      return bad()
    }
  }
  const v = Number(clean)
  if (!Number.isFinite(v)) return bad()
  return v
}

function describe(t: Token): string {
  if (t.type === 'eof') return 'end of template'
  if (t.type === 'right') return '}}'
  if (t.type === 'text') return 'text'
  return JSON.stringify(t.type === 'field' ? `.${t.value}` : t.value)
}

function argText(a: Arg): string {
  switch (a.t) {
    case 'field':
      return '.' + a.chain.join('.')
    case 'var':
      return a.name + a.chain.map((c) => '.' + c).join('')
    case 'dot':
      return '.'
    case 'string':
      return JSON.stringify(a.value)
    case 'number':
      return String(a.value)
    case 'bool':
      return String(a.value)
    case 'nil':
      return 'nil'
    case 'ident':
      return a.name
    default:
      return '(...)'
  }
}
