/** `Status` error bodies exactly as the apiserver words them, field.Error formatting, injected faults. */
import http from 'node:http'
import type {FaultOptions, FieldError, KubeObject, ResourceDefinition} from './types.js'
import {isObj} from './util.js'

export class StatusError extends Error {
  readonly status: KubeObject
  readonly headers: Record<string, string>
  constructor(status: KubeObject, headers: Record<string, string> = {}) {
    super(String(status.message ?? ''))
    this.status = status
    this.headers = headers
  }
  get code(): number {
    return Number(this.status.code)
  }
}

export function statusBody(code: number, reason: string | undefined, message: string, details?: KubeObject): KubeObject {
  const s: KubeObject = {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message}
  if (reason) s.reason = reason
  if (details) s.details = details
  s.code = code
  return s
}

export function qualifiedResource(def: ResourceDefinition): string {
  return def.group ? `${def.resource}.${def.group}` : def.resource
}

export function resourceDetails(def: ResourceDefinition, name: string, extra: KubeObject = {}): KubeObject {
  const d: KubeObject = {}
  if (name) d.name = name
  if (def.group) d.group = def.group
  d.kind = def.resource // the apiserver puts the *resource* in details.kind for these errors
  return {...d, ...extra}
}

export const errors = {
  notFound: (def: ResourceDefinition, name: string) =>
    new StatusError(statusBody(404, 'NotFound', `${qualifiedResource(def)} ${goQuote(name)} not found`, resourceDetails(def, name))),
  alreadyExists: (def: ResourceDefinition, name: string) =>
    new StatusError(
      statusBody(409, 'AlreadyExists', `${qualifiedResource(def)} ${goQuote(name)} already exists`, resourceDetails(def, name)),
    ),
  conflict: (def: ResourceDefinition, name: string, why: string) =>
    new StatusError(
      statusBody(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualifiedResource(def)} ${goQuote(name)}: ${why}`,
        resourceDetails(def, name),
      ),
    ),
  invalid: (group: string, kind: string, name: string, errs: FieldError[]) => {
    const qualifiedKind = group ? `${kind}.${group}` : kind
    const agg = errs.length === 1 ? fieldErrorString(errs[0]!) : `[${errs.map(fieldErrorString).join(', ')}]`
    const details: KubeObject = {}
    if (name) details.name = name
    if (group) details.group = group
    if (kind) details.kind = kind
    details.causes = errs.map((e) => ({reason: causeReason(e.type), message: fieldErrorBody(e), field: e.field}))
    return new StatusError(statusBody(422, 'Invalid', `${qualifiedKind} ${goQuote(name)} is invalid: ${agg}`, details))
  },
  badRequest: (message: string) => new StatusError(statusBody(400, 'BadRequest', message)),
  forbidden: (def: ResourceDefinition, name: string, why: string, causes?: KubeObject[]) =>
    new StatusError(
      statusBody(
        403,
        'Forbidden',
        `${qualifiedResource(def)} ${goQuote(name)} is forbidden: ${why}`,
        resourceDetails(def, name, causes ? {causes} : {}),
      ),
    ),
  genericNotFound: () => new StatusError(statusBody(404, 'NotFound', 'the server could not find the requested resource', {})),
  methodNotAllowed: () =>
    new StatusError(statusBody(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {})),
  unsupportedMediaType: (accepted: string[], note = '') =>
    new StatusError(
      statusBody(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}${note}`,
        {},
      ),
    ),
  expired: (message: string, metadata?: KubeObject) => {
    const s = statusBody(410, 'Expired', message)
    if (metadata) s.metadata = metadata
    return new StatusError(s)
  },
  tooLargeResourceVersion: (requested: number, current: number) =>
    new StatusError(
      statusBody(504, 'Timeout', `Too large resource version: ${requested}, current: ${current}`, {
        causes: [{reason: 'ResourceVersionTooLarge', message: 'Too large resource version'}],
        retryAfterSeconds: 1,
      }),
      {'Retry-After': '1'},
    ),
  /** A non-Status Go error: 500 with no reason, exactly how the apiserver reports them. */
  unknown: (message: string, code = 500) => new StatusError(statusBody(code, undefined, message)),
  internal: (message: string) =>
    new StatusError(statusBody(500, 'InternalError', `Internal error occurred: ${message}`, {causes: [{message}]})),
  unauthorized: () => new StatusError(statusBody(401, 'Unauthorized', 'Unauthorized')),
  /** errors.NewGenericServerResponse(422, ...) as used for failed JSON patches. */
  genericInvalid: () => new StatusError(statusBody(422, 'Invalid', 'the server rejected our request due to an error in our request', {})),
}

/** An injected failure as the apiserver would send it: Status body, reason, Retry-After. */
export function faultError(opts: FaultOptions): StatusError {
  const code = opts.status ?? 500
  const retry = opts.retryAfter ?? (code === 429 || code === 503 ? 1 : undefined)
  const headers: Record<string, string> = retry !== undefined ? {'Retry-After': String(retry)} : {}
  const withRetry = (d: KubeObject): KubeObject => (retry !== undefined ? {...d, retryAfterSeconds: retry} : d)
  switch (code) {
    case 500: {
      const m = opts.message ?? 'injected failure'
      return new StatusError(statusBody(500, 'InternalError', `Internal error occurred: ${m}`, {causes: [{message: m}]}), headers)
    }
    case 503:
      return new StatusError(
        statusBody(503, 'ServiceUnavailable', opts.message ?? 'the server is currently unable to handle the request', withRetry({})),
        headers,
      )
    case 429:
      return new StatusError(
        statusBody(429, 'TooManyRequests', opts.message ?? 'Too many requests, please try again later.', withRetry({})),
        headers,
      )
    case 504:
      return new StatusError(
        statusBody(504, 'Timeout', opts.message ?? 'Timeout: request did not complete within the allotted timeout', withRetry({})),
        headers,
      )
    default: {
      const reasons: Record<number, string> = {
        400: 'BadRequest',
        401: 'Unauthorized',
        403: 'Forbidden',
        404: 'NotFound',
        405: 'MethodNotAllowed',
        409: 'Conflict',
        410: 'Expired',
        422: 'Invalid',
      }
      return new StatusError(
        statusBody(code, reasons[code], opts.message ?? http.STATUS_CODES[code] ?? 'injected failure', withRetry({})),
        headers,
      )
    }
  }
}

/** 409 Conflict for a stale resourceVersion, exactly as the apiserver words it (fault injection in front of the server). */
export function conflictError(group: string, resource: string, name: string): StatusError {
  return errors.conflict(
    {group, resource} as ResourceDefinition,
    name,
    'the object has been modified; please apply your changes to the latest version and try again',
  )
}

// field.Error formatting -----------------------------------------------------------------------

export const FIELD_TYPE_STRING: Record<FieldError['type'], string> = {
  Required: 'Required value',
  Invalid: 'Invalid value',
  Forbidden: 'Forbidden',
  TooLong: 'Too long',
  NotSupported: 'Unsupported value',
  Duplicate: 'Duplicate value',
  TooMany: 'Too many',
}

export function causeReason(t: FieldError['type']): string {
  return {
    Required: 'FieldValueRequired',
    Invalid: 'FieldValueInvalid',
    Forbidden: 'FieldValueForbidden',
    TooLong: 'FieldValueTooLong',
    NotSupported: 'FieldValueNotSupported',
    Duplicate: 'FieldValueDuplicate',
    TooMany: 'FieldValueTooMany',
  }[t]
}

export function goQuote(s: string): string {
  return JSON.stringify(s)
}

export function goValue(v: unknown): string {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'string') return goQuote(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (typeof v === 'object' && v !== null && 'goSyntax' in v) return String((v as {goSyntax: unknown}).goSyntax)
  return JSON.stringify(v)
}

/** Go's fmt `%+v` of a map[string]interface{} (sorted keys, unquoted), as used in some apiserver messages. */
export function goMapFormat(v: unknown): string {
  if (v === null || v === undefined) return '<nil>'
  if (Array.isArray(v)) return `[${v.map(goMapFormat).join(' ')}]`
  if (isObj(v)) {
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${goMapFormat(v[k])}`)
      .join(' ')}]`
  }
  return String(v)
}

export function fieldErrorBody(e: FieldError): string {
  let s = FIELD_TYPE_STRING[e.type]
  if (!(e.type === 'Required' || e.type === 'Forbidden' || e.type === 'TooLong' || e.type === 'TooMany')) {
    s = `${s}: ${goValue(e.value)}`
  }
  if (e.detail) s += `: ${e.detail}`
  return s
}

export function fieldErrorString(e: FieldError): string {
  return `${e.field}: ${fieldErrorBody(e)}`
}

export const fe = {
  required: (field: string, detail = ''): FieldError => ({type: 'Required', field, detail}),
  invalid: (field: string, value: unknown, detail: string): FieldError => ({type: 'Invalid', field, value, detail}),
  forbidden: (field: string, detail: string): FieldError => ({type: 'Forbidden', field, detail}),
  tooLong: (field: string, max: number): FieldError => ({type: 'TooLong', field, detail: `must have at most ${max} bytes`}),
  notSupported: (field: string, value: unknown, supported: string[]): FieldError => ({
    type: 'NotSupported',
    field,
    value,
    detail: `supported values: ${supported.map(goQuote).join(', ')}`,
  }),
}
