/**
 * `kseal seal` and `kseal unseal` over manifest streams: every document is read (YAML 1.1 or JSON,
 * Lists included), the ones a step cares about are replaced, and every other document passes
 * through byte for byte. Output is YAML (replaced documents written fresh, the rest as they were)
 * or JSON (one object, or a v1 List when there are several).
 */
import {Document, type Document as YamlDocument, isMap, isNode, parseAllDocuments} from 'yaml'
import type {Recipient, Scope} from '../../keys/types.js'
import {applyEdits, type Edit} from '../manifest/edits.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {joinStreams} from './batch.js'
import {type Expanded, readStdin, readText, STDIN, writeAtomic} from '../core/files.js'
import {KUBE_YAML, kubeYamlString} from '../manifest/kubeyaml.js'
import {isCoreSecret, parseManifests} from '../manifest/parse.js'
import {isKsealSealedSecret, mergeIntoSealed, parseSealedSecret, sealSecret, unsealSealedSecret} from '../sealed/sealed.js'
import {isBitnamiSealedSecret, unsealBitnami} from '../formats/bitnami.js'
import type {UnsealKeys} from './unseal.js'

export type OutputFormat = 'yaml' | 'json'
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['yaml', 'json']

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Replaces one object (a document or a List item) or returns null to leave it as it is. */
export type ObjectStep = (obj: Obj) => Promise<Obj | null>

interface MappedDoc {
  doc: YamlDocument.Parsed
  /** The document as data (null for an empty document). */
  value: unknown
  changed: boolean
}

export interface MappedManifests {
  text: string
  eol: string
  docs: MappedDoc[]
}

const isList = (o: Obj): o is Obj & {items: unknown[]} => typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)

/** Applies a step to every object of a manifest text; all documents at once, so key operations overlap. */
export async function mapManifests(text: string, file: string | undefined, step: ObjectStep): Promise<MappedManifests> {
  const p = parseManifests(text, file)
  const docs = await Promise.all(p.docs.map(async (doc, i): Promise<MappedDoc> => {
    const where: Where = {file, document: i + 1}
    if (doc.contents === null) return {doc, value: null, changed: false}
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    try {
      if (isObj(js) && isList(js)) {
        let changed = false
        const items = await Promise.all(js.items.map(async (it) => {
          const r = isObj(it) ? await step(it) : null
          if (r) changed = true
          return r ?? it
        }))
        return {doc, value: changed ? {...js, items} : js, changed}
      }
      const r = isObj(js) ? await step(js) : null
      return {doc, value: r ?? js, changed: r !== null}
    } catch (e) {
      throw isKsealError(e) ? e.at(where) : e
    }
  }))
  return {text: p.text, eol: p.eol, docs}
}

/** YAML that kubectl, YAML 1.1 and YAML 1.2 readers all read the same way; long values never folded. */
export function toYaml(value: unknown): string {
  return kubeYamlString(new Document(value, KUBE_YAML), {lineWidth: 0, indentSeq: false})
}

/** The text with each changed document's content replaced; everything else (markers, comments, other documents) as it was. */
export function renderYaml(m: MappedManifests): string {
  const edits: Edit[] = []
  for (const d of m.docs) {
    if (!d.changed) continue
    const [start, end] = d.doc.contents!.range
    let body = toYaml(d.value)
    if (!m.text.slice(start, end).endsWith('\n')) body = body.replace(/\n$/, '')
    // Content that starts on the `---` line (`--- {...}`) moves to its own line: block YAML cannot start there.
    const lineStart = m.text.lastIndexOf('\n', start - 1) + 1
    if (m.text.slice(lineStart, start).trim() !== '') body = '\n' + body
    if (m.eol !== '\n') body = body.replace(/\n/g, m.eol)
    edits.push({start, end, text: body})
  }
  return edits.length ? applyEdits(m.text, edits) : m.text
}

/** The documents' data, empty documents left out. */
export function values(m: MappedManifests): unknown[] {
  return m.docs.filter((d) => d.value !== null && d.value !== undefined).map((d) => d.value)
}

export function renderJson(objs: unknown[]): string {
  if (objs.length === 0) return ''
  const out = objs.length === 1 ? objs[0] : {apiVersion: 'v1', kind: 'List', items: objs}
  return JSON.stringify(out, null, 2) + '\n'
}

export function sealStep(recipients: Recipient[], scope: Scope): ObjectStep {
  return async (o) => (isCoreSecret(o.kind, o.apiVersion) ? ((await sealSecret(o, recipients, scope)) as unknown as Obj) : null)
}

export function unsealStep(keys: UnsealKeys): ObjectStep {
  return async (o) => {
    if (isKsealSealedSecret(o)) return (await unsealSealedSecret(parseSealedSecret(o), (e, b) => keys.open(e, b))).secret
    if (isBitnamiSealedSecret(o)) return unsealBitnami(o, keys.rsaKeys)
    return null
  }
}

export interface StreamResult {
  /** Everything for stdout, or null when any input failed (nothing half-done reaches a pipeline). */
  stdout: string | null
  errors: KsealError[]
}

/** Runs a step over files (`-` for stdin): every file is attempted, every failure reported, output all or nothing. */
export async function runManifests(input: Expanded, step: ObjectStep, format: OutputFormat): Promise<StreamResult> {
  const files = input.files
  const results: (MappedManifests | KsealError)[] = new Array(files.length)
  let next = 0
  const worker = async () => {
    while (next < files.length) {
      const i = next++
      const label = files[i] === STDIN ? undefined : files[i]
      try {
        const text = label === undefined ? await readStdin() : await readText(label)
        results[i] = await mapManifests(text, label, step)
      } catch (e) {
        if (isKsealError(e)) {
          results[i] = e.at({file: label ?? '(stdin)'})
        } else {
          const err = new KsealError('ERR_IO', `unexpected error: ${(e as Error)?.message ?? String(e)}`, {file: label ?? '(stdin)'})
          ;(err as {cause?: unknown}).cause = e
          results[i] = err
        }
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(8, files.length)}, worker))
  const errors = [...input.errors, ...results.filter((r): r is KsealError => r instanceof KsealError)]
  if (errors.length) return {stdout: null, errors}
  const mapped = results as MappedManifests[]
  if (format === 'json') return {stdout: renderJson(mapped.flatMap(values)), errors}
  return {stdout: joinStreams(mapped.map(renderYaml)), errors}
}

/** The one v1 Secret in a manifest text (also inside a List), for `--merge-into`. */
export function singleSecret(text: string, file: string | undefined): Obj {
  const p = parseManifests(text, file)
  const found: Obj[] = []
  for (const doc of p.docs) {
    if (doc.contents === null) continue
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    if (!isObj(js)) continue
    for (const o of isList(js) ? js.items : [js]) if (isObj(o) && isCoreSecret(o.kind, o.apiVersion)) found.push(o)
  }
  const where: Where = {file: file ?? '(stdin)'}
  if (found.length === 0) throw new KsealError('ERR_INPUT', 'no v1 Secret to merge in the input', where)
  if (found.length > 1) throw new KsealError('ERR_USAGE', `--merge-into takes one Secret; the input has ${found.length}`, where)
  return found[0]
}

/**
 * Merges a Secret's values into the one kseal SealedSecret of a file's text and returns the new
 * text: YAML stays YAML (comments and other documents kept), JSON stays JSON.
 */
export async function mergeIntoText(text: string, file: string, secret: Obj, recipients: Recipient[], scope?: Scope): Promise<string> {
  const p = parseManifests(text, file)
  const where: Where = {file}
  const targets = p.docs.flatMap((doc, i) => {
    const js = doc.contents === null ? null : (doc.toJS({maxAliasCount: 100}) as unknown)
    return isKsealSealedSecret(js) ? [{doc, js: js as Obj, i}] : []
  })
  if (targets.length !== 1) {
    throw new KsealError('ERR_INPUT', `--merge-into needs a file with exactly one kseal SealedSecret; this one has ${targets.length}`, where)
  }
  const {doc, js, i} = targets[0]
  const has = (js.spec as {envelope?: {scope?: unknown}} | undefined)?.envelope?.scope
  if (scope && has !== scope) {
    throw new KsealError('ERR_USAGE', `--scope ${scope} differs from the SealedSecret's scope ${JSON.stringify(has ?? null)}; merged values keep the file's scope`, where)
  }
  let merged
  try {
    merged = await mergeIntoSealed(parseSealedSecret(js), secret, recipients)
  } catch (e) {
    throw isKsealError(e) ? e.at({...where, document: i + 1}) : e
  }
  const {encryptedData, envelope} = merged.spec
  if (/^\uFEFF?\s*[{[]/.test(text) && p.docs.length === 1) {
    const spec = isObj(js.spec) ? js.spec : {}
    return JSON.stringify({...js, spec: {...spec, encryptedData, envelope}}, null, 2) + '\n'
  }
  setSealedSpec(doc, [], js, {encryptedData, envelope})
  return applyEdits(p.text, [documentEdit(p, doc, where)])
}

/**
 * Writes new ciphertext into a SealedSecret in a parsed document (at `path`, for one inside a List),
 * editing the document in place so comments and key order survive; only changed values are set.
 */
export function setSealedSpec(doc: Document, path: (string | number)[], current: Obj, spec: {encryptedData: Record<string, string>; envelope: unknown}): void {
  const before = isObj(current.spec) && isObj(current.spec.encryptedData) ? current.spec.encryptedData : {}
  for (const [k, v] of Object.entries(spec.encryptedData)) if (before[k] !== v) doc.setIn([...path, 'spec', 'encryptedData', k], v)
  doc.setIn([...path, 'spec', 'envelope'], doc.createNode(spec.envelope))
}

/** The edit that writes a modified document's content back over its source range, in the file's line ends. */
export function documentEdit(p: {text: string; eol: string}, doc: Document, where?: Where): Edit {
  if (!isMap(doc.contents)) throw new KsealError('ERR_INPUT', 'the SealedSecret is not a mapping', where)
  const fresh = new Document(null, KUBE_YAML)
  // A comment right above the mapping (the yaml package hangs it on the first key) is outside its
  // range and stays in the text as it is: render without it, or it would be written twice.
  fresh.contents = doc.contents
  const [start, end] = doc.contents.range!
  const first = doc.contents.items[0]?.key as {commentBefore?: string | null} | undefined
  const above = first && isNode(first) && first.range && first.range[0] === start ? first.commentBefore : undefined
  if (above !== undefined) first!.commentBefore = undefined
  let body: string
  try {
    body = kubeYamlString(fresh, {lineWidth: 0, indentSeq: false})
  } finally {
    if (above !== undefined) first!.commentBefore = above
  }
  if (!p.text.slice(start, end).endsWith('\n')) body = body.replace(/\n$/, '')
  if (p.eol !== '\n') body = body.replace(/\n/g, p.eol)
  return {start, end, text: body}
}

/**
 * `kseal seal --merge-into FILE`: reads the one Secret from the inputs, merges its values into FILE's
 * SealedSecret and replaces FILE atomically. FILE is left as it was on any failure.
 */
export async function mergeIntoFile(target: string, inputs: string[], recipients: Recipient[], scope?: Scope): Promise<void> {
  if (inputs.length > 1) throw new KsealError('ERR_USAGE', '--merge-into reads one Secret from one file or stdin')
  const input = inputs[0] ?? STDIN
  const secretText = input === STDIN ? await readStdin() : await readText(input)
  const secret = singleSecret(secretText, input === STDIN ? undefined : input)
  const text = await readText(target)
  const out = await mergeIntoText(text, target, secret, recipients, scope)
  await writeAtomic(target, out)
}
