/**
 * `kseal reseal`: SealedSecret files re-encrypted to the controller's newest key. The controller
 * does the work (`POST /v1/rotate`: ciphertext in, ciphertext out), so this side never holds a
 * private key. Every other document passes through byte for byte; in a YAML file only the changed
 * SealedSecret documents are rewritten (comments and key order kept), JSON stays JSON.
 */
import type {Document as YamlDocument} from 'yaml'
import {
  controllerRequest,
  type ControllerResponse,
  type ControllerTarget,
  describeTarget,
  errorDetail,
  statusHint,
} from '../client/endpoints.js'
import {applyEdits} from '../manifest/edits.js'
import {type ErrorCode, isKsealError, KsealError, type Where} from '../core/errors.js'
import {isList, isObj, type Obj} from '../core/guards.js'
import {Limiter} from '../core/limit.js'
import {parseManifests} from '../manifest/parse.js'
import {isKsealSealedSecret} from '../sealed/types.js'
import {documentEdit} from '../manifest/objects.js'
import {setSealedSpec} from './seal.js'

/** Re-seals one SealedSecret object; `changed: false` when it already was sealed to the newest key alone. */
export type Resealer = (obj: Obj) => Promise<{sealed: Obj; changed: boolean}>

export interface ResealStats {
  resealed: number
  unchanged: number
}

const DECRYPT_CODES = new Set<string>(['ERR_NO_KEY', 'ERR_DECRYPT', 'ERR_INTEGRITY', 'ERR_VERSION'])

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null)
}

/**
 * A Resealer that asks the controller's `/v1/rotate`. The answer is checked: it must be the same
 * SealedSecret (name, namespace, scope, template, value keys) with only the ciphertext changed.
 */
export function controllerResealer(
  target: ControllerTarget,
  stats: ResealStats = {resealed: 0, unchanged: 0},
  retryForMs = RESEAL_RETRY_FOR_MS,
): Resealer {
  const inFlight = new Limiter(RESEAL_IN_FLIGHT)
  // When the controller's rate limit answers 429, every request of this run waits as it asked.
  let notBefore = 0
  const post = (body: string) =>
    inFlight.run(async () => {
      const wait = notBefore - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      return controllerRequest(target, '/v1/rotate', {
        method: 'POST',
        body,
        contentType: 'application/json',
        accept: 'application/json',
        timeoutMs: 30_000,
      })
    })
  return async (obj) => {
    const body = JSON.stringify(obj)
    const started = Date.now()
    let r = await post(body)
    while (r.status === 429 && Date.now() - started < retryForMs) {
      notBefore = Math.max(notBefore, Date.now() + retryAfterMs(r))
      r = await post(body)
    }
    if (r.status !== 200) {
      const detail = errorDetail(r.body)
      let code: ErrorCode = 'ERR_BACKEND'
      if (r.status === 400 || r.status === 413) code = 'ERR_INPUT'
      else if (r.status === 422) {
        try {
          const c = (JSON.parse(r.body) as {code?: string}).code
          code = c && DECRYPT_CODES.has(c) ? (c as ErrorCode) : 'ERR_DECRYPT'
        } catch {
          code = 'ERR_DECRYPT'
        }
      }
      throw new KsealError(
        code,
        `${describeTarget(target)} could not reseal it: HTTP ${r.status}${detail ? `: ${detail}` : ''}${statusHint(r.status, 'create')}`,
      )
    }
    let out: unknown
    try {
      out = JSON.parse(r.body)
    } catch {
      throw new KsealError('ERR_BACKEND', `${describeTarget(target)} answered /v1/rotate with something that is not JSON`)
    }
    const o = obj as {metadata?: Obj; spec?: Obj}
    const n = out as {metadata?: Obj; spec?: Obj}
    const envScope = (s: Obj | undefined) => (isObj(s?.envelope) ? (s!.envelope as Obj).scope : undefined)
    const keys = (s: Obj | undefined) => Object.keys(isObj(s?.encryptedData) ? (s!.encryptedData as Obj) : {}).sort()
    if (
      !isKsealSealedSecret(out) ||
      !same(n.metadata?.name, o.metadata?.name) ||
      !same(n.metadata?.namespace, o.metadata?.namespace) ||
      !same(n.spec?.template, o.spec?.template) ||
      envScope(n.spec) !== envScope(o.spec) ||
      !same(keys(n.spec), keys(o.spec))
    ) {
      throw new KsealError('ERR_BACKEND', `${describeTarget(target)} answered /v1/rotate with a different SealedSecret; nothing written`)
    }
    const changed = !same(n.spec?.encryptedData, o.spec?.encryptedData) || !same(n.spec?.envelope, o.spec?.envelope)
    if (changed) stats.resealed++
    else stats.unchanged++
    return {sealed: out as Obj, changed}
  }
}

/** /v1/rotate requests one reseal run keeps in flight. */
const RESEAL_IN_FLIGHT = 4
/** How long one request keeps being retried while the controller answers 429. */
const RESEAL_RETRY_FOR_MS = 120_000

/** The wait a 429 asks for: the controller's exact `retryAfterSeconds`, else Retry-After, else a second (at most a minute). */
function retryAfterMs(r: ControllerResponse): number {
  let s: unknown
  try {
    s = (JSON.parse(r.body) as {retryAfterSeconds?: unknown}).retryAfterSeconds
  } catch {
    // not our JSON: a proxy's answer
  }
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) s = /^\d+$/.test(r.retryAfter ?? '') ? Number(r.retryAfter) : 1
  return Math.min(60, Math.max(0.05, s as number)) * 1000
}

interface Target {
  doc: YamlDocument.Parsed
  /** Path of the SealedSecret inside the document: [] or ['items', i]. */
  path: (string | number)[]
  obj: Obj
  index: number
}

/** Reseals every kseal SealedSecret in a manifest text (also inside Lists); the text unchanged when nothing changed. */
export async function resealText(text: string, file: string | undefined, reseal: Resealer): Promise<string> {
  const p = parseManifests(text, file)
  const targets: Target[] = []
  p.docs.forEach((doc, index) => {
    if (doc.contents === null) return
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    if (isKsealSealedSecret(js)) targets.push({doc, path: [], obj: js as Obj, index})
    else if (isObj(js) && isList(js))
      js.items.forEach((it, i) => isKsealSealedSecret(it) && targets.push({doc, path: ['items', i], obj: it as Obj, index}))
  })
  const results = await Promise.all(
    targets.map(async (t) => {
      const at: Where = {file, document: t.index + 1}
      const meta = isObj(t.obj.metadata) ? t.obj.metadata : {}
      if (typeof meta.name === 'string')
        at.secret = `${typeof meta.namespace === 'string' && meta.namespace ? meta.namespace + '/' : ''}${meta.name}`
      try {
        return await reseal(t.obj)
      } catch (e) {
        throw isKsealError(e) ? e.at(at) : e
      }
    }),
  )
  const changed = targets.filter((_, i) => results[i].changed)
  if (changed.length === 0) return text
  if (/^\uFEFF?\s*[{[]/.test(text) && p.docs.length === 1) {
    // JSON in, JSON out.
    const js = p.docs[0].toJS({maxAliasCount: 100}) as Obj
    let root: Obj = js
    targets.forEach((t, i) => {
      if (!results[i].changed) return
      const spec = results[i].sealed.spec as Obj
      if (t.path.length === 0) root = {...root, spec: {...(root.spec as Obj), encryptedData: spec.encryptedData, envelope: spec.envelope}}
      else {
        const items = root.items as Obj[]
        const item = items[t.path[1] as number]
        items[t.path[1] as number] = {...item, spec: {...(item.spec as Obj), encryptedData: spec.encryptedData, envelope: spec.envelope}}
      }
    })
    return JSON.stringify(root, null, 2) + '\n'
  }
  // YAML: edit each changed document's tree (comments and order kept), then write only its content back.
  const docs = new Set<YamlDocument.Parsed>()
  targets.forEach((t, i) => {
    if (!results[i].changed) return
    setSealedSpec(t.doc, t.path, t.obj, results[i].sealed.spec as {encryptedData: Record<string, string>; envelope: unknown})
    docs.add(t.doc)
  })
  return applyEdits(
    p.text,
    [...docs].map((doc) => documentEdit(p, doc, {file})),
  )
}
