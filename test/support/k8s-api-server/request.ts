/** What the apiserver's RequestInfoFactory makes of a request. */
import type {RequestInfo} from './types.js'

/** What the apiserver's RequestInfoFactory makes of a request (verb, group, version, resource, subresource, namespace, name). */
export function resolveRequest(method: string, path: string, query: Record<string, string>): RequestInfo {
  const info: RequestInfo = {method, path, query, verb: method.toLowerCase(), isResourceRequest: false}
  const segs = path
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s)
      } catch {
        return s
      }
    })
  let rest: string[]
  if (segs[0] === 'api' && segs.length >= 3) {
    info.apiGroup = ''
    info.apiVersion = segs[1]
    rest = segs.slice(2)
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    info.apiGroup = segs[1]
    info.apiVersion = segs[2]
    rest = segs.slice(3)
  } else return info
  info.isResourceRequest = true
  let watchPrefix = false
  if (rest[0] === 'watch') {
    watchPrefix = true
    rest = rest.slice(1)
  }
  let parts = rest
  if (rest[0] === 'namespaces' && rest.length > 1) {
    if (rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') {
      info.namespace = rest[1]
      parts = rest.slice(2)
    }
  }
  info.resource = parts[0]
  if (parts.length >= 2) info.name = parts[1]
  if (parts.length >= 3) info.subresource = parts.slice(2).join('/')
  const watchParam = query.watch
  const isWatch = watchPrefix || (watchParam !== undefined && !['false', '0'].includes(watchParam.toLowerCase()))
  switch (method) {
    case 'GET':
    case 'HEAD':
      info.verb = info.name && !watchPrefix ? 'get' : isWatch ? 'watch' : 'list'
      if (watchPrefix && info.name) info.verb = 'watch'
      break
    case 'POST':
      info.verb = 'create'
      break
    case 'PUT':
      info.verb = 'update'
      break
    case 'PATCH':
      info.verb = 'patch'
      break
    case 'DELETE':
      info.verb = info.name ? 'delete' : 'deletecollection'
      break
    default:
      info.verb = method.toLowerCase()
  }
  return info
}
