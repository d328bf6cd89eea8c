/** list: resourceVersion and resourceVersionMatch semantics, selectors, pagination and continue tokens. */
import {fieldValue, matchesLabels, parseFieldSelector, parseLabelSelector} from './selectors.js'
import type {Server} from './server.js'
import {errors, fe, goQuote} from './status.js'
import type {Def, KubeObject} from './types.js'
import {apiVersionOf, clone, sleep} from './util.js'

/** Wait like the watch cache does for a resourceVersion from the future, then 504. */
export async function waitForRv(s: Server, rvParam: string | undefined, match: string | undefined): Promise<void> {
  if (rvParam === undefined || rvParam === '' || rvParam === '0' || match === 'Exact') return
  if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
  const want = Number(rvParam)
  const deadline = Date.now() + s.opts.tooLargeResourceVersionWaitMs
  while (s.rv < want) {
    if (Date.now() >= deadline) throw errors.tooLargeResourceVersion(want, s.rv)
    await sleep(10)
  }
}

export async function list(s: Server, def: Def, ns: string | undefined, q: Record<string, string>): Promise<KubeObject> {
  const labels = parseLabelSelector(q.labelSelector)
  const fields = parseFieldSelector(q.fieldSelector, def, q.labelSelector)
  const b = s.bucket(def)
  const rvParam = q.resourceVersion
  const match = q.resourceVersionMatch
  if (match && !rvParam) {
    throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
      fe.forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden unless resourceVersion is provided'),
    ])
  }
  if (match && match !== 'Exact' && match !== 'NotOlderThan') {
    throw errors.invalid('meta.k8s.io', 'ListOptions', '', [fe.notSupported('resourceVersionMatch', match, ['Exact', 'NotOlderThan'])])
  }
  if (match === 'Exact' && rvParam === '0') {
    throw errors.invalid('meta.k8s.io', 'ListOptions', '', [
      fe.forbidden('resourceVersionMatch', 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    ])
  }
  let listRv = s.rv
  let start = ''
  let objects: Map<string, KubeObject> = b.objects
  if (q.continue) {
    let token: {rv?: unknown; start?: unknown}
    try {
      token = JSON.parse(Buffer.from(q.continue, 'base64').toString('utf8')) as {rv?: unknown; start?: unknown}
    } catch {
      throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)')
    }
    if (typeof token.rv !== 'number' || typeof token.start !== 'string')
      throw errors.badRequest('continue key is not valid: invalid format')
    start = token.start
    if (token.rv !== -1) {
      if (token.rv < b.compactedRv) {
        const inconsistent = Buffer.from(JSON.stringify({v: 'meta.k8s.io/v1', rv: -1, start})).toString('base64')
        throw errors.expired(
          'The provided continue parameter is too old to display a consistent list result. ' +
            'You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. ' +
            'Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted ' +
            'between the time the first chunk was returned and now may show up in the list.',
          {continue: inconsistent},
        )
      }
      listRv = token.rv
      objects = s.snapshot(b, listRv)
    }
  } else if (rvParam && rvParam !== '0') {
    if (!/^\d+$/.test(rvParam)) throw errors.badRequest(`resourceVersion: Invalid value: ${goQuote(rvParam)}: invalid resource version`)
    const want = Number(rvParam)
    if (match === 'Exact') {
      if (want > s.rv) throw errors.tooLargeResourceVersion(want, s.rv)
      if (want < b.compactedRv) throw errors.expired('The resourceVersion for the provided list is too old.')
      listRv = want
      objects = s.snapshot(b, want)
    } else {
      await waitForRv(s, rvParam, match)
      listRv = s.rv
      objects = b.objects
    }
  }
  const view = (o: KubeObject) => (def.fromStorage ? def.fromStorage(clone(o)) : o)
  const entries = [...objects.entries()]
    .sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))
    .filter(([key, o]) => {
      if (ns !== undefined && o.metadata.namespace !== ns) return false
      if (start && key.slice(0) < start) return false
      const v = view(o)
      return matchesLabels(labels, v.metadata?.labels) && fields.every((f) => (fieldValue(def, v, f.field) === f.value) !== f.negate)
    })
  const limit = q.limit && /^\d+$/.test(q.limit) ? Number(q.limit) : 0
  const page = limit > 0 ? entries.slice(0, limit) : entries
  const listMeta: KubeObject = {resourceVersion: String(listRv)}
  if (limit > 0 && entries.length > limit) {
    const lastKey = page[page.length - 1]![0]
    listMeta.continue = Buffer.from(JSON.stringify({v: 'meta.k8s.io/v1', rv: listRv, start: `${lastKey}\u0000`})).toString('base64')
    if (!q.labelSelector && !q.fieldSelector) listMeta.remainingItemCount = entries.length - limit
  }
  const items = page.map(([, o]) => {
    const v = s.toViewOrdered(def, o)
    if (!def.custom) {
      // Typed lists omit apiVersion/kind on their items; unstructured (CR) lists keep them.
      delete v.apiVersion
      delete v.kind
    }
    return v
  })
  return {kind: def.listKind ?? `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: listMeta, items}
}
