/**
 * What every local AWS test server shares, whatever its wire protocol: the HTTP listener on
 * 127.0.0.1, body reading (bounded), SigV4 authentication against the shared AwsIam, latency and
 * fault injection, token-bucket throttling, the call log, in-flight counters, `x-amzn-RequestId`
 * and a `Date` header from the server's clock (the SDK corrects its clock skew from it, as against
 * AWS). The protocol (awsJson1_1 in json.ts, awsQuery in sts.ts) decides how an operation is named,
 * how results and errors are written, and which error codes the authentication failures become.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'
import {randomUUID} from 'node:crypto'
import {type Clock} from '../clock.js'
import {Listener, readBody} from '../http-listener.js'
import {type AccessKey, AwsIam} from './iam.js'
import {AuthFailure, verifySigV4} from './sigv4.js'

/** An error as a service answers it: a code (`__type` / `<Code>`), an optional message, a status. */
export class AwsError extends Error {
  readonly hasMessage: boolean
  constructor(
    readonly type: string,
    message?: string,
    readonly status?: number,
  ) {
    super(message ?? '')
    this.hasMessage = message !== undefined
  }
}

export interface AwsCall {
  service: string
  operation: string
  status: number
  errorType?: string
  accessKeyId?: string
  /** ARN of the verified caller (undefined when authentication failed). */
  principal?: string
  /** Attempt number from the SDK's `amz-sdk-request: attempt=N; max=M` header. */
  attempt?: number
  /** `amz-sdk-invocation-id` header: identical across retries of one SDK call. */
  invocationId?: string
  requestId: string
  durationMs: number
  /** Server clock when the request arrived. */
  time: number
}

export interface AwsFaultOptions {
  operation?: string
  message?: string
  /** Override the HTTP status (default: what the service uses for that error). */
  status?: number
}

export interface AwsThrottleOptions {
  /** Sustained requests per second (of the server's clock). */
  perSecond: number
  /** Bucket size (default: perSecond). */
  burst?: number
  /** Only this operation (default: all). */
  operation?: string
  /** Only this caller (default: all). */
  accessKeyId?: string
}

export interface AwsServerOptions {
  /** Region the server pretends to be (credential scope, ARNs). Default us-east-1. */
  region?: string
  /** Shared identities (and clock) of the account; one is created when omitted. */
  iam?: AwsIam
  /** Account id for the IAM created when `iam` is omitted. Default 111122223333. */
  accountId?: string
  /** Clock for the IAM created when `iam` is omitted. */
  clock?: Clock
  /** Initial per-call latency in ms (settable later via `latencyMs`). */
  latencyMs?: number
  /** Long-term access keys to accept: accessKeyId → secretAccessKey (added to the IAM). */
  credentials?: Record<string, string>
  /** accessKeyId → principal ARN for those keys (AccessDenied messages, GetCallerIdentity). */
  principals?: Record<string, string>
}

export interface RequestContext<X> {
  operation: string
  requestId: string
  req: IncomingMessage
  body: Buffer
  /** Set by authenticate(). */
  caller?: AccessKey
  accessKeyId?: string
  /** Service-specific call-log fields. */
  record: Partial<X>
}

export interface AwsResponse {
  status: number
  contentType: string
  body: string
  headers?: Record<string, string>
}

interface Fault {
  remaining: number
  type: string
  opts: AwsFaultOptions
}

interface Bucket {
  opts: AwsThrottleOptions
  tokens: number
  last: number
}

/** Bodies above this are refused before they are buffered (every service's limit is far lower). */
const MAX_BODY = 1024 * 1024

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export abstract class AwsServer<X extends object> {
  url = ''
  readonly region: string
  readonly accountId: string
  readonly iam: AwsIam
  readonly clock: Clock
  latencyMs: number
  readonly calls: Array<AwsCall & Partial<X>> = []
  inFlight = 0
  maxInFlight = 0

  /** Signing name in the credential scope (kms, secretsmanager, ssm, sts). */
  protected abstract readonly service: string
  private faults: Fault[] = []
  private buckets: Bucket[] = []
  private readonly listener = new Listener((req, res) => void this.handle(req, res))

  constructor(opts: AwsServerOptions) {
    this.region = opts.region ?? 'us-east-1'
    this.iam = opts.iam ?? new AwsIam({accountId: opts.accountId, clock: opts.clock})
    this.accountId = this.iam.accountId
    this.clock = this.iam.clock
    this.latencyMs = opts.latencyMs ?? 0
    for (const [id, secret] of Object.entries(opts.credentials ?? {})) this.iam.addAccessKey(id, secret, opts.principals?.[id])
  }

  // ---- protocol hooks ----

  /** The operation a request asks for, before anything is checked (for the call log). */
  protected abstract operationOf(req: IncomingMessage): string
  /** Authenticate, run the operation and write its result; throw AwsError to answer an error. */
  protected abstract respond(ctx: RequestContext<X>): Promise<AwsResponse> | AwsResponse
  protected abstract errorResponse(ctx: RequestContext<X>, err: AwsError): AwsResponse
  /** The protocol's error for a failed signature check. */
  protected abstract authError(failure: AuthFailure): AwsError
  /** The service's error when a throttle rule refuses a call. */
  protected abstract throttlingError(): AwsError
  /** The service's answer to a bug in this server (a 500 the test will notice). */
  protected abstract internalError(e: unknown): AwsError
  /** HTTP status the service uses for an error code (for failNext). */
  protected abstract statusOf(type: string): number
  /** Message the service sends with an error code when failNext gives none (undefined = no message). */
  protected defaultMessage(type: string): string | undefined {
    return `Injected ${type}`
  }
  /** Call-log fields of a finished request (default: what the operation recorded). */
  protected recordFields(ctx: RequestContext<X>): Partial<X> {
    return ctx.record
  }

  // ---- shared steps the protocols call ----

  /** Verify the request's SigV4 signature; the caller's key, or the protocol's auth error. */
  protected authenticate(ctx: RequestContext<X>): AccessKey {
    const seen: {accessKeyId?: string} = {}
    try {
      ctx.caller = verifySigV4(
        {method: ctx.req.method ?? 'GET', url: ctx.req.url ?? '/', rawHeaders: ctx.req.rawHeaders, body: ctx.body},
        {region: this.region, service: this.service, now: this.clock.now(), lookup: (id) => this.iam.lookup(id)},
        seen,
      )
      return ctx.caller
    } catch (e) {
      if (e instanceof AuthFailure) throw this.authError(e)
      throw e
    } finally {
      ctx.accessKeyId = seen.accessKeyId
    }
  }

  /** The injected failure for this operation, if one is pending. */
  protected takeFault(operation: string): AwsError | undefined {
    const fault = this.faults.find((f) => f.remaining > 0 && (f.opts.operation === undefined || f.opts.operation === operation))
    if (!fault) return undefined
    fault.remaining--
    this.faults = this.faults.filter((f) => f.remaining > 0)
    return new AwsError(fault.type, fault.opts.message ?? this.defaultMessage(fault.type), fault.opts.status ?? this.statusOf(fault.type))
  }

  /** Spend a token from every throttle rule that applies; the service's throttling error when one is empty. */
  protected checkThrottle(ctx: RequestContext<X>): void {
    const now = this.clock.now()
    for (const b of this.buckets) {
      if (b.opts.operation !== undefined && b.opts.operation !== ctx.operation) continue
      if (b.opts.accessKeyId !== undefined && b.opts.accessKeyId !== ctx.accessKeyId) continue
      const burst = b.opts.burst ?? b.opts.perSecond
      b.tokens = Math.min(burst, b.tokens + ((now - b.last) / 1000) * b.opts.perSecond)
      b.last = now
      if (b.tokens < 1) throw this.throttlingError()
      b.tokens -= 1
    }
  }

  /** The principal ARN used in AccessDenied messages. */
  protected principalArn(ctx: RequestContext<X>): string {
    return ctx.caller?.principal.arn ?? `arn:aws:iam::${this.accountId}:user/${ctx.accessKeyId ?? 'anonymous'}`
  }

  // ---- handle API ----

  count(operation?: string): number {
    return operation === undefined ? this.calls.length : this.calls.filter((c) => c.operation === operation).length
  }

  /** Clear `calls` and reset `maxInFlight` to the current `inFlight`. */
  resetStats(): void {
    this.calls.length = 0
    this.maxInFlight = this.inFlight
  }

  /** The next n matching requests (after authentication, before the operation runs) fail with this error. */
  failNext(n: number, type: string, opts: AwsFaultOptions = {}): void {
    if (n > 0) this.faults.push({remaining: n, type, opts: {...opts}})
  }

  clearFaults(): void {
    this.faults = []
  }

  /** Add a token-bucket rate limit (the bucket starts full); returns a function that removes it. */
  throttle(opts: AwsThrottleOptions): () => void {
    if (!(opts.perSecond > 0)) throw new Error('throttle: perSecond must be > 0')
    const b: Bucket = {opts: {...opts}, tokens: opts.burst ?? opts.perSecond, last: this.clock.now()}
    this.buckets.push(b)
    return () => {
      this.buckets = this.buckets.filter((x) => x !== b)
    }
  }

  clearThrottles(): void {
    this.buckets = []
  }

  async listen(): Promise<this> {
    this.url = await this.listener.listen()
    return this
  }

  close(): Promise<void> {
    return this.listener.close()
  }

  // ---- HTTP plumbing ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now()
    const time = this.clock.now()
    const requestId = randomUUID()
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    let done = false
    const finish = () => {
      if (!done) {
        done = true
        this.inFlight--
      }
    }
    res.on('finish', finish)
    res.on('close', finish)

    const ctx: RequestContext<X> = {operation: this.operationOf(req), requestId, req, body: Buffer.alloc(0), record: {}}
    const attemptHeader = header(req, 'amz-sdk-request')
    const attempt = attemptHeader ? /attempt=(\d+)/.exec(attemptHeader)?.[1] : undefined
    let response: AwsResponse
    let errorType: string | undefined
    try {
      ctx.body = await readBody(
        req,
        MAX_BODY,
        () => new AwsError('SerializationException', `Request body larger than ${MAX_BODY} bytes`, 413),
      )
      if (this.latencyMs > 0) await sleep(this.latencyMs)
      response = await this.respond(ctx)
    } catch (e) {
      const err = e instanceof AwsError ? e : this.internalError(e)
      errorType = err.type
      response = this.errorResponse(ctx, err)
    }

    this.calls.push({
      service: this.service,
      operation: ctx.operation,
      status: response.status,
      errorType,
      accessKeyId: ctx.accessKeyId,
      principal: ctx.caller?.principal.arn,
      attempt: attempt !== undefined ? Number(attempt) : undefined,
      invocationId: header(req, 'amz-sdk-invocation-id'),
      requestId,
      durationMs: Date.now() - started,
      time,
      ...this.recordFields(ctx),
    } as AwsCall & Partial<X>)
    if (res.destroyed) {
      finish()
      return
    }
    res.writeHead(response.status, {
      'Content-Type': response.contentType,
      'Content-Length': Buffer.byteLength(response.body),
      'x-amzn-RequestId': requestId,
      Date: new Date(this.clock.now()).toUTCString(),
      ...response.headers,
    })
    res.end(response.body)
  }
}
