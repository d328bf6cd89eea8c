/**
 * Watch streams: initial events or history replay, selector transitions turned into ADDED/DELETED
 * like the watch cache, bookmarks, timeouts and 410 Expired.
 */
import {randomUUID} from 'node:crypto'
import type {ServerResponse} from 'node:http'
import {
  fieldValue,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldRequirement,
  type LabelRequirement,
} from './selectors.js'
import type {Server} from './server.js'
import {errors, fe, goQuote, statusBody} from './status.js'
import type {Bucket, Def, HistoryEvent, KubeObject, WatchEventType} from './types.js'
import {apiVersionOf, clone} from './util.js'

export interface Watcher {
  id: number
  def: Def
  bucket: Bucket
  namespace?: string
  labels: LabelRequirement[]
  fields: FieldRequirement[]
  res: ServerResponse
  afterRv: number
  allowBookmarks: boolean
  timers: NodeJS.Timeout[]
  closed: boolean
}

export function matches(w: Watcher, obj: KubeObject | undefined): boolean {
  if (!obj) return false
  if (w.namespace !== undefined && obj.metadata?.namespace !== w.namespace) return false
  const view = w.def.fromStorage ? w.def.fromStorage(clone(obj)) : obj
  if (!matchesLabels(w.labels, view.metadata?.labels)) return false
  return w.fields.every((f) => (fieldValue(w.def, view, f.field) === f.value) !== f.negate)
}

/** Watch-cache semantics: objects entering/leaving the selector become ADDED/DELETED. */
export function dispatch(s: Server, w: Watcher, ev: HistoryEvent): void {
  if (w.closed || ev.rv <= w.afterRv) return
  const cur = ev.type !== 'DELETED' && matches(w, ev.obj)
  const prev = ev.type === 'ADDED' ? false : matches(w, ev.prev)
  let type: WatchEventType | undefined
  if (ev.type === 'DELETED') type = matches(w, ev.prev) ? 'DELETED' : undefined
  else if (cur && prev) type = 'MODIFIED'
  else if (cur) type = 'ADDED'
  else if (prev) type = 'DELETED'
  w.afterRv = ev.rv
  if (type) writeEvent(w, type, s.toView(w.def, ev.obj))
}

export function writeEvent(w: Watcher, type: string, object: KubeObject): void {
  if (w.closed) return
  const o = object.kind === 'Status' ? object : (({kind, apiVersion, ...rest}) => ({kind, apiVersion, ...rest}))(object)
  w.res.write(`${JSON.stringify({type, object: o})}\n`)
}

export function sendBookmark(s: Server, w: Watcher, annotations?: Record<string, string>): void {
  const m: KubeObject = {resourceVersion: String(Math.max(w.afterRv, s.rv)), creationTimestamp: null}
  if (annotations) m.annotations = annotations
  writeEvent(w, 'BOOKMARK', {kind: w.def.kind, apiVersion: apiVersionOf(w.def), metadata: m})
}

export function expiredStatus(requested: number, oldest: number): KubeObject {
  return statusBody(410, 'Expired', `too old resource version: ${requested} (${oldest})`)
}

export function endWatch(s: Server, w: Watcher, abrupt: boolean): void {
  if (w.closed) return
  w.closed = true
  for (const t of w.timers) clearTimeout(t)
  s.watchers.delete(w)
  if (abrupt) {
    w.res.socket?.destroy()
    w.res.destroy()
  } else w.res.end()
}

export function startWatch(s: Server, def: Def, ns: string | undefined, q: Record<string, string>, res: ServerResponse): void {
  const labels = parseLabelSelector(q.labelSelector)
  const fields = parseFieldSelector(q.fieldSelector, def, q.labelSelector)
  const b = s.bucket(def)
  const rvParam = q.resourceVersion
  const sendInitial = q.sendInitialEvents === 'true'
  if (sendInitial) {
    if (q.resourceVersionMatch !== 'NotOlderThan') {
      throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
        fe.forbidden('resourceVersionMatch', 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan'),
      ])
    }
    if (q.allowWatchBookmarks !== 'true') {
      throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
        fe.forbidden('allowWatchBookmarks', 'allowWatchBookmarks must be set to true when sendInitialEvents is true'),
      ])
    }
  }
  let from: number | undefined
  if (rvParam !== undefined && rvParam !== '' && rvParam !== '0') {
    if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
    from = Number(rvParam)
  }
  res.writeHead(200, {'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID()})
  res.flushHeaders()
  const w: Watcher = {
    id: s.nextWatcherId++,
    def,
    bucket: b,
    namespace: def.namespaced ? ns : undefined,
    labels,
    fields,
    res,
    afterRv: 0,
    allowBookmarks: q.allowWatchBookmarks === 'true',
    timers: [],
    closed: false,
  }
  if (from !== undefined && !sendInitial) {
    if (from < b.compactedRv) {
      // What the watch cache does for a too-old RV: HTTP 200, one ERROR event, end of stream.
      res.end(`${JSON.stringify({type: 'ERROR', object: expiredStatus(from, b.compactedRv)})}\n`)
      return
    }
    w.afterRv = from
    for (const ev of b.history) if (ev.rv > from) dispatch(s, w, ev)
    w.afterRv = Math.max(from, s.rv)
  } else {
    for (const o of s.sortedObjects(b.objects)) if (matches(w, o)) writeEvent(w, 'ADDED', s.toView(def, o))
    w.afterRv = s.rv
    if (sendInitial) sendBookmark(s, w, {'k8s.io/initial-events-end': 'true'})
  }
  s.watchers.add(w)
  const onClose = () => {
    if (!w.closed) {
      w.closed = true
      for (const t of w.timers) clearTimeout(t)
      s.watchers.delete(w)
    }
  }
  res.on('close', onClose)
  if (q.timeoutSeconds !== undefined && /^\d+$/.test(q.timeoutSeconds) && Number(q.timeoutSeconds) > 0) {
    const t = setTimeout(
      () => {
        if (w.allowBookmarks) sendBookmark(s, w)
        endWatch(s, w, false)
      },
      Number(q.timeoutSeconds) * 1000,
    )
    t.unref()
    w.timers.push(t)
  }
  if (w.allowBookmarks && s.opts.bookmarkIntervalMs > 0) {
    const t = setInterval(() => sendBookmark(s, w), s.opts.bookmarkIntervalMs)
    t.unref()
    w.timers.push(t)
  }
}
