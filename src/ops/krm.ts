/**
 * `kseal krm`: kseal as a KRM function (the kustomize/kpt "KRM functions" spec). A `ResourceList`
 * comes in on stdin; the same `ResourceList` goes out on stdout with every encrypted Secret among
 * its `items` decrypted — each item otherwise byte for byte as it came, annotations included.
 *
 * Options come from `functionConfig`: `spec` of any kind (e.g. `kind: KsealDecrypt`), or `data` of
 * a ConfigMap:
 *   keys:  private keys, as `--key` takes them (a list, or a comma/space-separated string);
 *          KSEAL_KEYS and ~/.config/kseal/keys are looked at after them, as for `kseal decrypt`.
 *   files: manifest files to read, decrypt and add to `items` (generator use). A relative path is
 *          relative to the package's directory under `kpt fn render` (which names it on the
 *          functionConfig), else to the working directory: kustomize runs exec functions in the
 *          kustomization's directory, `kpt fn eval` in its own working directory (it names no
 *          package to the function).
 *
 * SOPS and kubesec items are decrypted too (foreign.ts): each such item's text, taken out of the
 * list at its indentation, is opened as its own file and put back in place, its MAC verified.
 *
 * Failures are `results` entries (severity error, message, resourceRef, and file when the item's
 * path annotation tells it) with a non-zero exit; then no item is decrypted at all, so no partial
 * plaintext reaches the output or kustomize's error message. Unknown options are warnings.
 */
import path from 'node:path'
import {type Document, isMap, isNode, isSeq, parseDocument, type YAMLMap} from 'yaml'
import {applyEdits, type Edit} from '../manifest/edits.js'
import {formatWhere, isKsealError, KsealError} from '../core/errors.js'
import type {Keyring} from '../keyring/keyring.js'
import {KUBE_YAML} from '../manifest/kubeyaml.js'
import {type ParsedManifests, parseManifests, type SecretDoc} from '../manifest/parse.js'
import {decryptSecret} from '../secret/secret.js'
import {looksForeign} from '../formats/detect.js'
import type {SopsKeys} from './decrypt.js'

const RESOURCE_LIST_VERSIONS = ['config.kubernetes.io/v1', 'config.kubernetes.io/v1beta1', 'config.kubernetes.io/v1alpha1']

export interface KrmResult {
  message: string
  severity: 'error' | 'warning' | 'info'
  resourceRef?: {apiVersion: string; kind: string; name: string; namespace?: string}
  file?: {path: string; index?: number}
}

export interface KrmDeps {
  /** The keyring for these `--key`-style specs (then KSEAL_KEYS, then the config directory). */
  keyring(keys: string[]): Keyring
  readFile(file: string): Promise<string>
  /** The working directory: where relative `files:` are read when no package directory is named. */
  cwd: string
  /** The keys for SOPS and kubesec items and files (with the keyring's age keys); without it they pass through. */
  sopsKeys?(keyring: Keyring): SopsKeys
}

export interface KrmOutcome {
  /** The ResourceList to write to stdout (with `results` when there are any). */
  output: string
  /** The failures behind the error results, for stderr and the exit code. */
  errors: KsealError[]
}

interface FunctionOptions {
  keys: string[]
  files: string[]
}

const OPTION_NAMES = ['keys', 'files'] as const

/** Reads the kseal options of a functionConfig; unknown options become warnings. */
function functionOptions(config: unknown, results: KrmResult[]): FunctionOptions {
  const opts: FunctionOptions = {keys: [], files: []}
  if (config === null || config === undefined) return opts
  if (typeof config !== 'object' || Array.isArray(config)) throw new KsealError('ERR_CONFIG', 'functionConfig must be a Kubernetes object')
  const o = config as Record<string, unknown>
  const field = o.kind === 'ConfigMap' ? 'data' : 'spec'
  const section = o[field]
  if (section === null || section === undefined) return opts
  if (typeof section !== 'object' || Array.isArray(section)) throw new KsealError('ERR_CONFIG', `functionConfig ${field} must be a mapping`)
  for (const [k, v] of Object.entries(section as Record<string, unknown>)) {
    if (!(OPTION_NAMES as readonly string[]).includes(k)) {
      results.push({
        severity: 'warning',
        message: `functionConfig ${field}.${k} is not a kseal option (known: ${OPTION_NAMES.join(', ')}); ignored`,
      })
      continue
    }
    if (typeof v === 'string') opts[k as keyof FunctionOptions] = v.split(/[\s,]+/).filter(Boolean)
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) opts[k as keyof FunctionOptions] = v as string[]
    else if (v !== null) throw new KsealError('ERR_CONFIG', `functionConfig ${field}.${k} must be a list of strings`)
  }
  return opts
}

/** The annotation on which `kpt fn render` names the package's directory (absolute). */
const PACKAGE_PATH = 'internal.config.kubernetes.io/package-path'

/** The directory that relative `files:` are read from: the package's under kpt fn render, else the working directory. */
function filesBase(config: unknown, cwd: string): string {
  const annotations = (config as {metadata?: {annotations?: Record<string, unknown>}} | null)?.metadata?.annotations
  const pkg = annotations?.[PACKAGE_PATH]
  return typeof pkg === 'string' && path.isAbsolute(pkg) ? pkg : cwd
}

function resourceList(doc: Document.Parsed): YAMLMap {
  const root = doc.contents
  if (
    !isMap(root) ||
    (root.get('kind') as unknown) !== 'ResourceList' ||
    !RESOURCE_LIST_VERSIONS.includes(String(root.get('apiVersion')))
  ) {
    throw new KsealError('ERR_INPUT', `not a ResourceList (expected apiVersion: ${RESOURCE_LIST_VERSIONS[0]}, kind: ResourceList)`)
  }
  const items = root.get('items', true)
  if (items !== undefined && items !== null && !isSeq(items)) throw new KsealError('ERR_INPUT', 'ResourceList items must be a list')
  return root
}

/** Where an item came from, per the kustomize/kpt annotations. */
function fileOf(item: YAMLMap): KrmResult['file'] {
  const ann = item.getIn(['metadata', 'annotations'])
  if (!isMap(ann)) return undefined
  const p = ann.get('internal.config.kubernetes.io/path') ?? ann.get('config.kubernetes.io/path')
  if (typeof p !== 'string' || !p) return undefined
  const i = Number(ann.get('internal.config.kubernetes.io/index') ?? ann.get('config.kubernetes.io/index'))
  return Number.isInteger(i) ? {path: p, index: i} : {path: p}
}

function errorResult(e: KsealError, ref?: KrmResult['resourceRef'], file?: KrmResult['file']): KrmResult {
  // The resourceRef names the resource; otherwise the message says where (the file is in `file`).
  const where = ref ? (e.where.key ? `${e.where.key}: ` : '') : formatWhere({...e.where, file: undefined})
  const r: KrmResult = {severity: 'error', message: where + e.message}
  if (ref) r.resourceRef = ref
  if (file) r.file = file
  return r
}

const secretRef = (s: SecretDoc): KrmResult['resourceRef'] => ({
  apiVersion: 'v1',
  kind: 'Secret',
  name: s.name,
  ...(s.namespace ? {namespace: s.namespace} : {}),
})

/** Decrypts the Secrets of one parsed text; failures go to results/errors instead of throwing. */
async function decryptAll(
  p: ParsedManifests,
  keyring: Keyring,
  fileFor: (s: SecretDoc) => KrmResult['file'],
  results: KrmResult[],
  errors: KsealError[],
): Promise<string> {
  const settled = await Promise.allSettled(p.secrets.map((s) => decryptSecret(p.text, p.eol, s, keyring)))
  const edits: Edit[] = []
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      edits.push(...r.value)
      return
    }
    const e = isKsealError(r.reason) ? r.reason : new KsealError('ERR_IO', `unexpected error: ${(r.reason as Error)?.message ?? r.reason}`)
    errors.push(e)
    results.push(errorResult(e, secretRef(p.secrets[i]), fileFor(p.secrets[i])))
  })
  return applyEdits(p.text, edits)
}

/** An item's SOPS value or kubesec footer, at any indentation. */
const MAY_HOLD_FOREIGN = /ENC\[AES256_GCM,|# kubesec:v:/

/**
 * Decrypts the SOPS and kubesec items of a ResourceList: each item's source, dedented to a document
 * of its own (SOPS's paths and MAC are the item's, as in the file it came from), is opened and put
 * back at its indentation. Failures go to results/errors.
 */
async function decryptForeignItems(p: ParsedManifests, sops: SopsKeys, results: KrmResult[], errors: KsealError[]): Promise<string> {
  const items = (p.docs[0].contents as YAMLMap).get('items', true)
  if (!isSeq(items)) return p.text
  const {openForeign} = await import('./foreign.js')
  const text = p.text
  const edits: Edit[] = []
  for (const item of items.items) {
    if (!isMap(item) || !item.range) continue
    const start = item.range[0]
    const end = start + text.slice(start, item.range[2]).replace(/[ \t]+$/, '').length
    const indent = ' '.repeat(start - (text.lastIndexOf('\n', start - 1) + 1))
    const own = text.slice(start, end).replace(new RegExp(`(\r?\n)${indent}`, 'g'), '$1')
    if (!looksForeign(own)) continue
    try {
      const plain = await openForeign(own, undefined, await sops())
      if (plain !== own) edits.push({start, end, text: plain.replace(/(\r?\n)(?=[^\r\n])/g, `$1${indent}`)})
    } catch (e) {
      const err = isKsealError(e) ? e : new KsealError('ERR_IO', `unexpected error: ${(e as Error)?.message ?? e}`)
      errors.push(err)
      const meta = item.get('metadata')
      const name = isMap(meta) ? String(meta.get('name') ?? '') : ''
      const namespace = isMap(meta) && meta.get('namespace') ? String(meta.get('namespace')) : undefined
      const ref = {
        apiVersion: String(item.get('apiVersion') ?? ''),
        kind: String(item.get('kind') ?? ''),
        name,
        ...(namespace ? {namespace} : {}),
      }
      results.push(errorResult(err, ref, fileOf(item)))
    }
  }
  return edits.length ? applyEdits(text, edits) : text
}

export async function runKrm(input: string, deps: KrmDeps): Promise<KrmOutcome> {
  const results: KrmResult[] = []
  const errors: KsealError[] = []
  const fail = (e: KsealError, file?: KrmResult['file']) => {
    errors.push(file ? e.at({file: file.path}) : e)
    results.push(errorResult(e, undefined, file))
  }

  // A Secret item that kseal cannot read (a value that is not a string, say) is a result, as long
  // as the input is a ResourceList at all; input that is not one is an error without output.
  let parsed: ParsedManifests | undefined
  let unreadable: KsealError | undefined
  try {
    parsed = parseManifests(input)
  } catch (e) {
    if (!isKsealError(e)) throw e
    unreadable = e
  }
  let root: YAMLMap
  if (parsed) {
    if (parsed.docs.length !== 1) throw new KsealError('ERR_INPUT', `a ResourceList is one YAML document, not ${parsed.docs.length}`)
    root = resourceList(parsed.docs[0])
  } else {
    const doc = parseDocument(input, KUBE_YAML)
    if (doc.errors.length) throw unreadable
    root = resourceList(doc)
    fail(unreadable!)
  }

  let opts: FunctionOptions = {keys: [], files: []}
  let base = deps.cwd
  try {
    const fc = root.get('functionConfig', true)
    const config: unknown = isNode(fc) ? fc.toJSON() : fc
    opts = functionOptions(config, results)
    base = filesBase(config, deps.cwd)
  } catch (e) {
    if (!isKsealError(e)) throw e
    fail(e)
  }

  let text = input
  const generated: unknown[] = []
  if (!errors.length && parsed) {
    const keyring = deps.keyring(opts.keys)
    const sops = deps.sopsKeys?.(keyring)
    if (sops && MAY_HOLD_FOREIGN.test(input)) {
      const plain = await decryptForeignItems(parsed, sops, results, errors)
      if (plain !== input) parsed = parseManifests(plain)
    }
    text = await decryptAll(parsed, keyring, (s) => fileOf(s.map), results, errors)
    // Generator use: each listed file, decrypted, joins the items.
    for (const file of opts.files) {
      try {
        let source = await deps.readFile(path.resolve(base, file))
        if (sops && looksForeign(source)) source = await (await import('./foreign.js')).openForeign(source, file, await sops())
        const p = parseManifests(source, file)
        const plain = await decryptAll(p, keyring, (s) => ({path: file, index: (s.where.document ?? 1) - 1}), results, errors)
        for (const d of parseManifests(plain, file).docs) if (d.contents !== null) generated.push(d.contents)
      } catch (e) {
        if (!isKsealError(e)) throw e
        fail(e, {path: file})
      }
    }
  }

  if (errors.length) text = input // all or nothing: no decrypted item leaves on failure
  if (!results.length && !generated.length) return {output: text, errors}
  const out = parseDocument(text, KUBE_YAML)
  if (!errors.length && generated.length) {
    const items = out.get('items', true)
    if (isSeq(items)) items.items.push(...generated)
    else out.set('items', generated)
  }
  if (results.length) out.set('results', out.createNode(results))
  return {output: out.toString({lineWidth: 0}), errors}
}
