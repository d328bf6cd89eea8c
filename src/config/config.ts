/**
 * `.kseal.yaml`: who a Secret is encrypted for when `kseal encrypt` gets no `-r`. Found by walking
 * up from each file's directory (from the working directory for stdin), as sops finds
 * `.sops.yaml`. A `creation_rules` list maps a path regex (matched against the file's path
 * relative to the config file's directory, `/`-separated) and/or a namespace regex (matched against
 * the Secret's metadata.namespace) to recipients and a scope; the first rule that matches wins.
 *
 *   creation_rules:
 *     - path_regex: ^prod/
 *       namespace_regex: ^prod-
 *       scope: strict
 *       recipients:
 *         - rsa:keys/team.crt
 *         - awskms:arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci
 *         - age:age1...
 *     - recipients: rsa:keys/team.crt, age:age1...
 *
 * Regexes are JavaScript regular expressions searched anywhere in the string (anchor with ^ and $).
 * Relative paths in recipients (`rsa:keys/team.crt`) are relative to the config file. Besides
 * `recipients` (a list or a comma-separated string), a rule may name keys per backend as sops does:
 * `rsa`, `awskms` (or `kms`) and `age`, each a list or a comma-separated string.
 */
import {promises as fs} from 'node:fs'
import path from 'node:path'
import {isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, type YAMLMap} from 'yaml'
import {type Backends, splitUri} from '../../keys/index.js'
import type {Recipient} from '../../keys/types.js'
import {type Scope, SCOPES} from '../envelope/binding.js'
import {ioError, isKsealError, KsealError, formatWhere} from '../core/errors.js'
import type {Keyring} from '../keyring/keyring.js'
import type {SecretDoc} from '../manifest/parse.js'

export const CONFIG_NAMES = ['.kseal.yaml', '.kseal.yml']

export interface CreationRule {
  /** 1-based position in creation_rules, and the line it starts on, for messages. */
  index: number
  line: number
  pathRegex?: RegExp
  namespaceRegex?: RegExp
  /** Recipient URIs, in order. */
  recipients: string[]
  scope?: Scope
  /** What the Secrets are written as: kseal's format (the default) or SOPS's, for SOPS-only consumers. */
  format?: SecretFormat
}

/** kseal's own format, or SOPS's (`encrypted_regex: ^(data|stringData)$`) for Flux, KSOPS, helm-secrets. */
export const SECRET_FORMATS = ['kseal', 'sops'] as const
export type SecretFormat = (typeof SECRET_FORMATS)[number]

export interface KsealConfig {
  /** Absolute path of the config file. */
  file: string
  /** Its directory: the base of path_regex and of relative recipient paths. */
  dir: string
  rules: CreationRule[]
}

const RULE_KEYS = ['path_regex', 'namespace_regex', 'recipients', 'scope', 'format', 'rsa', 'awskms', 'kms', 'age']
/** Per-backend shorthand keys and the URI scheme each one stands for. */
const SHORTHAND: Record<string, string> = {rsa: 'rsa', awskms: 'awskms', kms: 'awskms', age: 'age'}

/** Parses a config file's text. Every problem is ERR_CONFIG (exit 2) located as `file:line`. */
export function parseConfig(text: string, file: string): KsealConfig {
  const lc = new LineCounter()
  const at = (line: number) => ({file: `${file}:${line}`})
  const lineOf = (n: Node | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : 1)
  const fail = (n: Node | null | undefined, msg: string): never => {
    throw new KsealError('ERR_CONFIG', msg, at(lineOf(n)))
  }

  const docs = parseAllDocuments(text, {lineCounter: lc, uniqueKeys: true, prettyErrors: false})
  const list = Array.isArray(docs) ? docs : [docs]
  for (const d of list) {
    const err = d.errors[0]
    if (err) {
      const line = err.linePos?.[0]?.line ?? (err.pos ? lc.linePos(err.pos[0]).line : 1)
      throw new KsealError('ERR_CONFIG', `not valid YAML: ${err.message.split('\n')[0]}`, at(line))
    }
  }
  if (list.length !== 1)
    throw new KsealError(
      'ERR_CONFIG',
      list.length === 0 ? 'empty config: it needs a creation_rules list' : 'expected one YAML document',
      at(1),
    )
  const root = list[0].contents
  if (!isMap(root)) return fail(root, 'expected a mapping with a creation_rules list')
  const rulesPair = root.items.find((p) => isScalar(p.key) && p.key.value === 'creation_rules')
  if (!rulesPair) return fail(root, 'no creation_rules list')
  const seq = rulesPair.value as Node | null
  if (!isSeq(seq) || seq.items.length === 0) return fail(seq ?? (rulesPair.key as Node), 'creation_rules must be a non-empty list of rules')

  const rules = seq.items.map((item, i): CreationRule => {
    const node = item as Node
    const where = `creation_rules[${i}]`
    if (!isMap(node)) return fail(node, `${where}: each rule must be a mapping (path_regex, namespace_regex, recipients, scope)`)
    const rule: CreationRule = {index: i + 1, line: lineOf(node), recipients: []}
    for (const pair of (node as YAMLMap).items) {
      const keyNode = pair.key as Node
      const key = isScalar(keyNode) ? String(keyNode.value) : ''
      const value = pair.value as Node | null
      if (!RULE_KEYS.includes(key)) return fail(keyNode, `${where}: unknown key "${key}" (known: ${RULE_KEYS.join(', ')})`)
      if (key === 'path_regex' || key === 'namespace_regex') {
        const src = scalarString(value) ?? fail(value ?? keyNode, `${where}.${key}: expected a regular expression string`)
        let re: RegExp
        try {
          re = new RegExp(src)
        } catch (e) {
          return fail(value, `${where}.${key}: invalid regular expression: ${(e as Error).message}`)
        }
        if (key === 'path_regex') rule.pathRegex = re
        else rule.namespaceRegex = re
      } else if (key === 'scope') {
        const s = scalarString(value)
        if (!s || !(SCOPES as readonly string[]).includes(s))
          return fail(value ?? keyNode, `${where}.scope: expected one of ${SCOPES.join(', ')}`)
        rule.scope = s as Scope
      } else if (key === 'format') {
        const f = scalarString(value)
        if (!f || !(SECRET_FORMATS as readonly string[]).includes(f))
          return fail(value ?? keyNode, `${where}.format: expected one of ${SECRET_FORMATS.join(', ')}`)
        rule.format = f as SecretFormat
      } else {
        const items =
          stringList(value) ??
          fail(
            value ?? keyNode,
            `${where}.${key}: expected a list of ${key === 'recipients' ? 'key URIs' : 'keys'} or a comma-separated string`,
          )
        for (const {text: raw, node: n} of items) {
          const uri = key === 'recipients' ? raw : `${SHORTHAND[key]}:${raw}`
          if (!splitUri(uri)) {
            return fail(n, `${where}.${key}: "${raw}" is not a key URI (expected rsa:PATH, awskms:ARN or age:age1...)`)
          }
          rule.recipients.push(uri)
        }
      }
    }
    if (rule.recipients.length === 0) return fail(node, `${where}: no recipients (add recipients: [rsa:PATH, awskms:ARN, age:age1...])`)
    return rule
  })
  return {file, dir: path.dirname(file), rules}
}

function scalarString(n: Node | null | undefined): string | undefined {
  return isScalar(n) && typeof n.value === 'string' ? n.value : undefined
}

function stringList(n: Node | null | undefined): {text: string; node: Node}[] | undefined {
  const split = (s: string, node: Node) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean)
      .map((text) => ({text, node}))
  if (isScalar(n) && typeof n.value === 'string') return split(n.value, n)
  if (!isSeq(n)) return undefined
  const out: {text: string; node: Node}[] = []
  for (const item of n.items) {
    const s = scalarString(item as Node)
    if (s === undefined) return undefined
    out.push(...split(s, item as Node))
  }
  return out
}

/** The first rule that matches a file (path relative to the config's directory) and a namespace. */
export function matchRule(config: KsealConfig, file: string | undefined, namespace: string): CreationRule | undefined {
  const rel = file === undefined ? undefined : relativePath(config.dir, file)
  return config.rules.find((r) => {
    if (r.pathRegex && (rel === undefined || !r.pathRegex.test(rel))) return false
    if (r.namespaceRegex && !r.namespaceRegex.test(namespace)) return false
    return true
  })
}

function relativePath(dir: string, file: string): string {
  return path.relative(dir, path.resolve(file)).split(path.sep).join('/')
}

/**
 * Finds and parses the nearest config for a directory, walking up to the filesystem root. Results
 * are cached per directory, so many files share one read.
 */
export class ConfigFinder {
  private readonly cache = new Map<string, Promise<KsealConfig | null>>()
  constructor(private readonly displayBase: string = process.cwd()) {}

  find(dir: string): Promise<KsealConfig | null> {
    const abs = path.resolve(dir)
    let found = this.cache.get(abs)
    if (!found) {
      found = this.lookup(abs)
      this.cache.set(abs, found)
    }
    return found
  }

  private async lookup(dir: string): Promise<KsealConfig | null> {
    for (const name of CONFIG_NAMES) {
      const file = path.join(dir, name)
      let text: string
      try {
        text = await fs.readFile(file, 'utf8')
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ENOTDIR') continue
        throw ioError(e, this.display(file))
      }
      const config = parseConfig(text, this.display(file))
      return {...config, file, dir}
    }
    const parent = path.dirname(dir)
    return parent === dir ? null : this.find(parent)
  }

  /** A config path as shown in messages: relative to the working directory when below it. */
  display(file: string): string {
    const rel = path.relative(this.displayBase, file)
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file
  }
}

/** What a rule decides for a Secret: who it is encrypted for, and the scope (the shape of the encryption's options). */
export interface RuleChoice {
  recipients: Recipient[]
  scope: Scope
  keyring?: Keyring
  /** The rule's format: kseal unless it says sops. */
  format?: SecretFormat
}

export interface RuleOptions {
  /** An explicit --scope: wins over the rule's scope. */
  scope?: Scope
  keyring?: Keyring
}

/** Recipients and scope for each Secret from `.kseal.yaml`, for `kseal encrypt` without `-r`. */
export class CreationRules {
  private readonly finder: ConfigFinder
  private readonly recipients = new Map<CreationRule, Promise<Recipient[]>>()

  constructor(
    private readonly backends: Backends,
    finder?: ConfigFinder,
  ) {
    this.finder = finder ?? new ConfigFinder(backends.ctx.cwd)
  }

  /** The directory a file's config search starts from (the working directory for stdin). */
  private dirOf(file: string | undefined): string {
    return file === undefined ? this.backends.ctx.cwd : path.dirname(path.resolve(this.backends.ctx.cwd, file))
  }

  /** Reads every config the files will use, so a malformed one stops the run before any work. */
  async preload(files: (string | undefined)[]): Promise<void> {
    for (const dir of new Set(files.map((f) => this.dirOf(f)))) await this.finder.find(dir)
  }

  /** Whether a `.kseal.yaml` applies to the file (read now, so a malformed one fails before any work). */
  async cover(file: string | undefined): Promise<boolean> {
    return (await this.finder.find(this.dirOf(file))) !== null
  }

  /** Whether a rule of the config that applies to the file writes SOPS (so the SOPS writer is loaded only then). */
  async mayWriteSops(file: string | undefined): Promise<boolean> {
    const config = await this.finder.find(this.dirOf(file))
    return Boolean(config?.rules.some((r) => r.format === 'sops'))
  }

  /** The options that encrypt one Secret that has no envelope yet. */
  async optionsFor(file: string | undefined, s: SecretDoc, base: RuleOptions): Promise<RuleChoice> {
    const config = await this.finder.find(this.dirOf(file))
    if (!config) {
      throw new KsealError(
        'ERR_USAGE',
        'no recipients: pass -r KEY_URI (e.g. -r rsa:team.crt), or add a .kseal.yaml in this directory or above: ' +
          '"creation_rules: [{recipients: [rsa:team.crt]}]" (see kseal encrypt --help)',
      )
    }
    const abs = file === undefined ? undefined : path.resolve(this.backends.ctx.cwd, file)
    const rule = matchRule(config, abs, s.namespace)
    if (!rule) {
      const rel = abs === undefined ? '(stdin)' : relativePath(config.dir, abs)
      throw new KsealError(
        'ERR_USAGE',
        `no creation rule in ${this.finder.display(config.file)} matches path "${rel}" and namespace "${s.namespace}": ` +
          'add a rule (e.g. "- path_regex: ... / recipients: [rsa:team.crt]") or pass -r KEY_URI',
      )
    }
    return {
      recipients: await this.recipientsOf(config, rule),
      scope: base.scope ?? rule.scope ?? 'strict',
      keyring: base.keyring,
      format: rule.format ?? 'kseal',
    }
  }

  private recipientsOf(config: KsealConfig, rule: CreationRule): Promise<Recipient[]> {
    let r = this.recipients.get(rule)
    if (!r) {
      const ctx = {...this.backends.ctx, cwd: config.dir}
      r = Promise.all(
        rule.recipients.map(async (uri) => {
          const parts = splitUri(uri)!
          try {
            return await (await this.backends.get(parts.scheme)).recipient(parts.rest, ctx)
          } catch (e) {
            if (!isKsealError(e)) throw e
            throw new KsealError(e.code, `creation_rules[${rule.index - 1}]: recipient ${uri}: ${formatWhere(e.where)}${e.message}`, {
              file: `${this.finder.display(config.file)}:${rule.line}`,
            })
          }
        }),
      )
      this.recipients.set(rule, r)
    }
    return r
  }
}
