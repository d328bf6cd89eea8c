/**
 * Manifest streams as objects: every document of a text (YAML 1.1 or JSON, Lists included) is read,
 * a step may replace any object in it, and every other document passes through byte for byte. Output
 * is YAML (replaced documents written fresh, the rest as they were) or JSON (one object, or a v1 List
 * when there are several).
 */
import {Document, type Document as YamlDocument, isMap, isNode} from 'yaml'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {isList, isObj, type Obj} from '../core/guards.js'
import {applyEdits, type Edit} from './edits.js'
import {KUBE_YAML, kubeYamlString} from './kubeyaml.js'
import {parseManifests} from './parse.js'

export type OutputFormat = 'yaml' | 'json'
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['yaml', 'json']

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

/** Applies a step to every object of a manifest text; all documents at once, so key operations overlap. */
export async function mapManifests(text: string, file: string | undefined, step: ObjectStep): Promise<MappedManifests> {
  const p = parseManifests(text, file)
  const docs = await Promise.all(
    p.docs.map(async (doc, i): Promise<MappedDoc> => {
      const where: Where = {file, document: i + 1}
      if (doc.contents === null) return {doc, value: null, changed: false}
      const js = doc.toJS({maxAliasCount: 100}) as unknown
      try {
        if (isObj(js) && isList(js)) {
          let changed = false
          const items = await Promise.all(
            js.items.map(async (it) => {
              const r = isObj(it) ? await step(it) : null
              if (r) changed = true
              return r ?? it
            }),
          )
          return {doc, value: changed ? {...js, items} : js, changed}
        }
        const r = isObj(js) ? await step(js) : null
        return {doc, value: r ?? js, changed: r !== null}
      } catch (e) {
        throw isKsealError(e) ? e.at(where) : e
      }
    }),
  )
  return {text: p.text, eol: p.eol, docs}
}

/** YAML that kubectl, YAML 1.1 and YAML 1.2 readers all read the same way; long values never folded. */
export function toYaml(value: unknown): string {
  return kubeYamlString(new Document(value, KUBE_YAML), {lineWidth: 0, indentSeq: false})
}

/** The text with each changed document's content replaced; everything else (markers, comments, other documents) as it was. */
export function renderYaml(m: MappedManifests): string {
  const edits: Edit[] = []
  for (const d of m.docs) if (d.changed) edits.push(contentEdit(m.text, m.eol, d.doc, toYaml(d.value)))
  return edits.length ? applyEdits(m.text, edits) : m.text
}

/** The edit that replaces a document's content with `body` (YAML or JSON text); markers and comments around it stay. */
export function contentEdit(text: string, eol: string, doc: YamlDocument.Parsed, body: string): Edit {
  const [start, end] = doc.contents!.range
  if (!text.slice(start, end).endsWith('\n')) body = body.replace(/\n$/, '')
  // Content that starts on the `---` line (`--- {...}`) moves to its own line: block YAML cannot start there.
  const lineStart = text.lastIndexOf('\n', start - 1) + 1
  if (text.slice(lineStart, start).trim() !== '') body = '\n' + body
  if (eol !== '\n') body = body.replace(/\n/g, eol)
  return {start, end, text: body}
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

/**
 * Joins several files' manifests into one YAML stream. Pieces are collected and joined once: asking
 * a growing string what it ends with flattens it, which made joining 200 files copy the output about
 * a hundred times (a tenth of a bulk decrypt's main thread).
 */
export function joinStreams(parts: string[]): string {
  const out: string[] = []
  let last = ''
  const push = (s: string) => {
    if (!s.length) return
    out.push(s)
    last = s[s.length - 1]!
  }
  parts.forEach((p, i) => {
    if (i > 0 && p.length) {
      if (last !== '\n') push('\n')
      if (!/^(\uFEFF)?---(\s|$)/.test(p)) push('---\n')
    }
    push(p)
  })
  return out.join('')
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
