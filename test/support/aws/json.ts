/**
 * The awsJson1_1 protocol (KMS, Secrets Manager, SSM...): `POST /` with
 * `X-Amz-Target: <TargetPrefix>.<Operation>` and `Content-Type: application/x-amz-json-1.1`, a JSON
 * object in, a JSON object out; errors as `{"__type": ..., "message": ...}` with
 * `x-amzn-ErrorType: <Code>:<namespace>`. Errors raised by the framework in front of a service
 * (authentication, serialization, unknown operation, shape validation) carry the coral-namespaced
 * `__type` AWS sends; the SDK strips everything up to `#`.
 *
 * Order of checks, as on AWS: operation known → signature → JSON body → injected fault → throttle →
 * the operation (which validates its input, resolves resources, checks deny rules, then acts).
 */
import type {IncomingMessage} from 'node:http'
import {AwsError, AwsServer, type AwsResponse, type AwsServerOptions, type RequestContext} from './server.js'
import type {AuthFailure} from './sigv4.js'

export const JSON_CONTENT_TYPE = 'application/x-amz-json-1.1'

export type Body = Record<string, unknown>
export type JsonOperation<X> = (ctx: RequestContext<X>, body: Body) => Body | Promise<Body>

const CORAL_SERVICE = 'com.amazon.coral.service#'
const CORAL_VALIDATE = 'com.amazon.coral.validate#'

/** Errors raised by the coral framework rather than by the service carry a namespaced __type. */
const WIRE_TYPE: Record<string, string> = {
  MissingAuthenticationTokenException: CORAL_SERVICE + 'MissingAuthenticationTokenException',
  IncompleteSignatureException: CORAL_SERVICE + 'IncompleteSignatureException',
  InvalidSignatureException: CORAL_SERVICE + 'InvalidSignatureException',
  UnrecognizedClientException: CORAL_SERVICE + 'UnrecognizedClientException',
  ExpiredTokenException: CORAL_SERVICE + 'ExpiredTokenException',
  SerializationException: CORAL_SERVICE + 'SerializationException',
  UnknownOperationException: CORAL_SERVICE + 'UnknownOperationException',
  ValidationException: CORAL_VALIDATE + 'ValidationException',
}

const AUTH_ERROR: Record<AuthFailure['kind'], string> = {
  missing: 'MissingAuthenticationTokenException',
  incomplete: 'IncompleteSignatureException',
  signature: 'InvalidSignatureException',
  unrecognized: 'UnrecognizedClientException',
  expired: 'ExpiredTokenException',
}

/** `N validation error(s) detected: ...` as coral writes shape-constraint failures. */
export function validationError(...problems: string[]): AwsError {
  const n = problems.length
  return new AwsError('ValidationException', `${n} validation error${n === 1 ? '' : 's'} detected: ${problems.join('; ')}`)
}

// ---- request-shape helpers (coral checks types before the service sees the input) ----

export function optString(body: Body, field: string): string | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw new AwsError('SerializationException', `Expected a string for ${field}`)
  return v
}

export function optBool(body: Body, field: string): boolean | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') throw new AwsError('SerializationException', `Expected a boolean for ${field}`)
  return v
}

export function optInt(body: Body, field: string): number | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new AwsError('SerializationException', `Expected an integer for ${field}`)
  return v
}

export function optStringList(body: Body, field: string): string[] | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw new AwsError('SerializationException', `Expected a list of strings for ${field}`)
  return v as string[]
}

export function optList(body: Body, field: string): Body[] | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null || Array.isArray(x))) {
    throw new AwsError('SerializationException', `Expected a list of structures for ${field}`)
  }
  return v as Body[]
}

/** The member name coral puts in validation messages: the field with a lower-case first letter. */
export function wireName(field: string): string {
  return field[0]!.toLowerCase() + field.slice(1)
}

export function requiredString(body: Body, field: string, min = 1, max = Infinity): string {
  const v = optString(body, field)
  if (v === undefined) throw validationError(`Value null at '${wireName(field)}' failed to satisfy constraint: Member must not be null`)
  checkLength(field, v, min, max)
  return v
}

export function checkLength(field: string, v: string | unknown[], min: number, max: number): void {
  if (v.length < min)
    throw validationError(
      `Value at '${wireName(field)}' failed to satisfy constraint: Member must have length greater than or equal to ${min}`,
    )
  if (v.length > max)
    throw validationError(
      `Value at '${wireName(field)}' failed to satisfy constraint: Member must have length less than or equal to ${max}`,
    )
}

export function checkRange(field: string, v: number, min: number, max: number): void {
  if (v < min)
    throw validationError(
      `Value '${v}' at '${wireName(field)}' failed to satisfy constraint: Member must have value greater than or equal to ${min}`,
    )
  if (v > max)
    throw validationError(
      `Value '${v}' at '${wireName(field)}' failed to satisfy constraint: Member must have value less than or equal to ${max}`,
    )
}

/** Epoch seconds, as awsJson writes timestamps (the SDK turns them into Dates). */
export function epochSeconds(ms: number): number {
  return ms / 1000
}

export interface AwsJsonServerOptions extends AwsServerOptions {
  /** Listings read at most this many items per page before filtering (default: all), so filtered pages may be short or empty, as AWS's may. */
  listScanLimit?: number
}

export abstract class AwsJsonServer<X extends object> extends AwsServer<X> {
  /** See AwsJsonServerOptions.listScanLimit (for services with filtered listings). Settable. */
  listScanLimit: number
  /** `TrentService.`, `secretsmanager.`, `AmazonSSM.` */
  protected abstract readonly targetPrefix: string
  /** Suffix of x-amzn-ErrorType: `:http://internal.amazon.com/coral/<namespace>/`. */
  protected abstract readonly errorNamespace: string
  protected abstract readonly operations: Record<string, JsonOperation<X>>
  /** Status codes other than 400 this service uses. */
  protected readonly statuses: Record<string, number> = {}
  /** The service's 500 error code (InternalServiceError, InternalServerError...). */
  protected abstract readonly internalErrorType: string

  constructor(opts: AwsJsonServerOptions) {
    super(opts)
    this.listScanLimit = opts.listScanLimit ?? Infinity
  }

  protected throttlingError(): AwsError {
    return new AwsError('ThrottlingException', 'Rate exceeded')
  }

  protected internalError(e: unknown): AwsError {
    return new AwsError(this.internalErrorType, `${this.service}-server bug: ${e instanceof Error ? e.stack : String(e)}`)
  }

  protected statusOf(type: string): number {
    return this.statuses[type] ?? 400
  }

  /** Called with the parsed body when an injected fault answers instead of the operation. */
  protected onFault(_ctx: RequestContext<X>, _body: Body): void {}

  protected operationOf(req: IncomingMessage): string {
    const v = req.headers['x-amz-target']
    const target = (Array.isArray(v) ? v[0] : v) ?? ''
    return target.startsWith(this.targetPrefix) ? target.slice(this.targetPrefix.length) : target
  }

  protected authError(f: AuthFailure): AwsError {
    return new AwsError(AUTH_ERROR[f.kind], f.message)
  }

  protected async respond(ctx: RequestContext<X>): Promise<AwsResponse> {
    const target = ctx.req.headers['x-amz-target']
    const op = Object.hasOwn(this.operations, ctx.operation) ? this.operations[ctx.operation] : undefined
    if (ctx.req.method !== 'POST' || op === undefined) {
      const known = typeof target === 'string' && target.startsWith(this.targetPrefix)
      throw new AwsError(
        'UnknownOperationException',
        known ? `${this.service}-server: operation ${ctx.operation} is not implemented by the local test server` : undefined,
      )
    }
    this.authenticate(ctx)
    const ct = (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (ct !== JSON_CONTENT_TYPE && ct !== 'application/x-amz-json-1.0') {
      throw new AwsError('SerializationException', `Unsupported Content-Type '${ct}': expected ${JSON_CONTENT_TYPE}`)
    }
    let body: unknown
    try {
      body = ctx.body.length === 0 ? {} : JSON.parse(ctx.body.toString('utf8'))
    } catch {
      throw new AwsError('SerializationException', 'Unable to parse the request body as JSON')
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new AwsError('SerializationException', 'Request body must be a JSON object')
    }
    const fault = this.takeFault(ctx.operation)
    if (fault) {
      this.onFault(ctx, body as Body)
      throw fault
    }
    this.checkThrottle(ctx)
    const result = await op(ctx, body as Body)
    return {status: 200, contentType: JSON_CONTENT_TYPE, body: JSON.stringify(result)}
  }

  protected errorResponse(_ctx: RequestContext<X>, err: AwsError): AwsResponse {
    const payload: Body = {__type: WIRE_TYPE[err.type] ?? err.type}
    if (err.hasMessage) payload.message = err.message
    return {
      status: err.status ?? this.statusOf(err.type),
      contentType: JSON_CONTENT_TYPE,
      body: JSON.stringify(payload),
      headers: {'x-amzn-ErrorType': `${err.type}:http://internal.amazon.com/coral/${this.errorNamespace}/`},
    }
  }
}
