/**
 * The executor: walks a parsed template over the fetched values (`.` is the map of secret keys to
 * their values; a missing key is an error, as external-secrets' `missingkey=error`). Bounded three
 * ways: the output, every string a function builds, and the number of steps (nodes evaluated and
 * range iterations), so a template cannot loop, grow or allocate without limit.
 */
import {TemplateError} from './errors.js'
import {type CallContext, FUNCTIONS} from './funcs.js'
import type {Arg, BlockNode, Cmd, Node, Pipe} from './parse.js'
import {formatValue, truth, typeName, type Value} from './values.js'

export interface Limits {
  /** Bytes a template may produce, and the largest string any step may build. */
  maxOutput: number
  /** Nodes evaluated plus range iterations. */
  maxSteps: number
}

export const DEFAULT_LIMITS: Limits = {maxOutput: 1024 * 1024, maxSteps: 100_000}

interface Var {
  name: string
  value: Value | undefined
}

export class Executor {
  private out: string[] = []
  private size = 0
  private steps = 0
  private readonly vars: Var[]

  constructor(
    private readonly src: string,
    private readonly name: string,
    private readonly root: Value,
    private readonly limits: Limits,
  ) {
    this.vars = [{name: '$', value: root}]
  }

  run(nodes: Node[]): string {
    this.walk(nodes, this.root)
    return this.out.join('')
  }

  private fail(pos: number, msg: string): never {
    throw new TemplateError(this.name, this.src, pos, msg)
  }

  private step(pos: number): void {
    if (++this.steps > this.limits.maxSteps) this.fail(pos, `stopped after ${this.limits.maxSteps} steps (a loop too long for a template)`)
  }

  private write(s: string, pos: number): void {
    this.size += s.length
    if (this.size > this.limits.maxOutput) this.fail(pos, `the output is larger than ${this.limits.maxOutput} bytes`)
    this.out.push(s)
  }

  private walk(nodes: Node[], dot: Value | undefined): void {
    for (const n of nodes) {
      if (n.t === 'text') {
        this.write(n.text, 0)
        continue
      }
      this.step(n.pos)
      const mark = this.vars.length
      if (n.t === 'action') {
        const v = this.pipeline(n.pipe, dot)
        // A declaration prints nothing; its variable lives to the end of the enclosing block.
        if (n.pipe.decl.length === 0) this.write(v === null || v === undefined ? '<no value>' : formatValue(v), n.pos)
        continue
      }
      if (n.t === 'range') {
        this.range(n, dot)
      } else {
        const v = this.pipeline(n.pipe, dot)
        if (truth(v)) this.walk(n.list, n.t === 'with' ? v : dot)
        else if (n.else) this.walk(n.else, dot)
      }
      this.vars.length = mark
    }
  }

  private range(n: BlockNode, dot: Value | undefined): void {
    const decl = n.pipe.decl
    const v = this.pipeline({...n.pipe, decl: []}, dot)
    const mark = this.vars.length
    let items: [Value, Value][]
    if (v === null || v === undefined) items = []
    else if (Array.isArray(v)) items = v.map((x, i) => [BigInt(i), x])
    else if (v instanceof Map) items = [...v.keys()].sort().map((k) => [k, v.get(k)!])
    else return this.fail(n.pos, `range can't iterate over ${typeName(v)}`)
    if (items.length === 0) {
      if (n.else) this.walk(n.else, dot)
      return
    }
    for (const [k, x] of items) {
      this.step(n.pos)
      this.vars.length = mark
      if (decl.length === 1) this.setVar(decl[0], x, n.pipe.assign)
      if (decl.length === 2) {
        this.setVar(decl[0], k, n.pipe.assign)
        this.setVar(decl[1], x, n.pipe.assign)
      }
      this.walk(n.list, x)
    }
  }

  private setVar(name: string, value: Value | undefined, assign: boolean): void {
    if (!assign) {
      this.vars.push({name, value})
      return
    }
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) {
        this.vars[i].value = value
        return
      }
    }
  }

  private pipeline(p: Pipe, dot: Value | undefined): Value | undefined {
    let v: Value | undefined
    let first = true
    for (const c of p.cmds) {
      v = this.command(c, dot, first ? undefined : {value: v})
      first = false
    }
    for (const d of p.decl) this.setVar(d, v, p.assign)
    return v
  }

  private command(c: Cmd, dot: Value | undefined, final: {value: Value | undefined} | undefined): Value | undefined {
    this.step(c.pos)
    const head = c.args[0]
    if (head.t === 'ident') return this.call(head.name, c.args.slice(1), dot, final, head.pos)
    if (final) this.fail(head.pos, `can't give argument to non-function`)
    return this.arg(head, dot)
  }

  private arg(a: Arg, dot: Value | undefined): Value | undefined {
    switch (a.t) {
      case 'dot':
        return dot
      case 'string':
      case 'number':
      case 'bool':
        return a.value
      case 'nil':
        return null
      case 'ident':
        return this.call(a.name, [], dot, undefined, a.pos)
      case 'field':
        return this.chain(dot, a.chain, a.pos)
      case 'var': {
        const found = [...this.vars].reverse().find((x) => x.name === a.name)
        if (!found) this.fail(a.pos, `undefined variable ${JSON.stringify(a.name)}`)
        return this.chain(found!.value, a.chain, a.pos)
      }
      case 'pipe': {
        const mark = this.vars.length
        const v = this.pipeline(a.pipe, dot)
        this.vars.length = mark
        return this.chain(v, a.chain, a.pos)
      }
    }
  }

  private chain(v: Value | undefined, names: string[], pos: number): Value | undefined {
    for (const name of names) {
      if (v instanceof Map) {
        if (!v.has(name)) this.fail(pos, `map has no entry for key ${JSON.stringify(name)}`)
        v = v.get(name)
      } else if (v === null || v === undefined) {
        this.fail(pos, `nil pointer evaluating interface {}.${name}`)
      } else {
        this.fail(pos, `can't evaluate field ${name} in type ${typeName(v)}`)
      }
    }
    return v
  }

  private call(
    name: string,
    args: Arg[],
    dot: Value | undefined,
    final: {value: Value | undefined} | undefined,
    pos: number,
  ): Value | undefined {
    const f = FUNCTIONS[name]
    const count = args.length + (final ? 1 : 0)
    if (count < f.min || count > f.max) {
      const want = f.min === f.max ? `${f.min}` : f.max === Infinity ? `at least ${f.min}` : `${f.min} or ${f.max}`
      this.fail(pos, `wrong number of args for ${name}: want ${want} got ${count}`)
    }
    const ctx: CallContext = {
      fail: (msg) => this.fail(pos, msg),
      sized: (s) => {
        if (s.length > this.limits.maxOutput) this.fail(pos, `${name}: the result is larger than ${this.limits.maxOutput} bytes`)
        return s
      },
    }
    // and / or stop at the first argument that decides, as Go's do.
    if (name === 'and' || name === 'or') {
      let v: Value | undefined
      for (let i = 0; i < count; i++) {
        v = i < args.length ? this.arg(args[i], dot) : final!.value
        if (truth(v) === (name === 'or')) return v
      }
      return v
    }
    const values = args.map((a) => this.arg(a, dot))
    if (final) values.push(final.value)
    return f.fn(values, ctx)
  }
}
