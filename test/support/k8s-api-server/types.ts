/** The public types of the Kubernetes API test server and its storage records. */
import {KubeConfig} from '@kubernetes/client-node'
import type {IssueOptions, IssuedToken, TokenOptions} from './tokens.js'

/** A JSON Kubernetes object (loosely typed on purpose: tests poke at arbitrary fields). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = Record<string, any>

/** A validation error in the shape of k8s.io/apimachinery/pkg/util/validation/field.Error. */
export interface FieldError {
  type: 'Required' | 'Invalid' | 'Forbidden' | 'TooLong' | 'NotSupported' | 'Duplicate' | 'TooMany'
  field: string
  /** Offending value (Invalid/NotSupported/Duplicate). `{goSyntax: '0x0'}` prints verbatim. */
  value?: unknown
  detail?: string
}

export interface ResourceDefinition {
  /** '' for the core group. */
  group: string
  version: string
  /** Plural resource name, e.g. `secrets`. */
  resource: string
  kind: string
  singular?: string
  listKind?: string
  namespaced: boolean
  shortNames?: string[]
  categories?: string[]
  /** Serve `/status` with status-subresource semantics. */
  statusSubresource?: boolean
  /**
   * CustomResource semantics (default false): generation starts at 1 and bumps on any non-metadata
   * change, PUT requires metadata.resourceVersion, strategic-merge-patch is rejected with 415,
   * list items carry apiVersion/kind, DELETE returns the object, error messages use
   * `<plural>.<group>`.
   */
  custom?: boolean
  /** PUT on a missing object creates it (true for Leases and Events). Default false. */
  allowCreateOnUpdate?: boolean
  /** PUT without metadata.resourceVersion is accepted. Default: true for built-ins, false for CRs. */
  allowUnconditionalUpdate?: boolean
  /** DELETE answers with the object instead of a `Status`. Default: true for CRs. */
  returnDeletedObject?: boolean
  /** Track metadata.generation (default: true for CRs, false otherwise). */
  generation?: boolean
  /** Extra field selectors beyond metadata.name/metadata.namespace. */
  fieldSelectors?: Record<string, (obj: KubeObject) => string | undefined>
  /**
   * Known top-level fields of a built-in type. Unknown fields are dropped (Warning header), or
   * rejected with `fieldValidation=Strict`, like typed decoding does. Omit for CRs (kept as-is).
   */
  knownFields?: string[]
  /** Storage identity: definitions sharing it see the same objects (core/v1 and events.k8s.io/v1 Events). */
  storageKey?: string
  /** Convert an object of this definition's version to the storage version (default: identity). */
  toStorage?: (obj: KubeObject) => KubeObject
  /** Convert a storage object to this definition's version (default: identity). */
  fromStorage?: (obj: KubeObject) => KubeObject
  /**
   * Typed decoding of a request body in this definition's version. Mutate `obj` (defaulting,
   * normalisation) and return an error message to reject it as a decoding error (400 on
   * create/update, 422 `patch: Invalid value` on patch, like the apiserver).
   */
  decode?: (obj: KubeObject) => string | undefined
  /** Strategy hook run on create (storage version). */
  prepareForCreate?: (obj: KubeObject) => void
  /** Strategy hook run on update of the main resource (storage version). */
  prepareForUpdate?: (obj: KubeObject, old: KubeObject) => void
  /** Type-specific validation (storage version), on top of the generic ObjectMeta validation. */
  validate?: (obj: KubeObject, old: KubeObject | undefined, def: ResourceDefinition) => FieldError[]
  /** Name validation: DNS-1123 subdomain (default) or label. */
  nameValidation?: 'subdomain' | 'label'
}

export interface K8sApiServerOptions {
  /** Port to listen on (default 0: random). Always binds 127.0.0.1 unless `host` says otherwise. */
  port?: number
  host?: string
  /** When set, every request must carry `Authorization: Bearer <token>` (401 otherwise). */
  token?: string
  /** Watch history kept per resource (like the watch cache). Default 500 events. */
  historySize?: number
  /** Delay added before each request is processed. */
  latencyMs?: number
  /** Reject creates in namespaces that do not exist (NamespaceLifecycle admission). Default false. */
  requireNamespaces?: boolean
  /** Run the garbage collector / namespace controller emulation. Default true. */
  gc?: boolean
  /** Delay before a GC pass runs after a write (default 0: next macrotask). */
  gcDelayMs?: number
  /** Interval of BOOKMARK events on watches with allowWatchBookmarks=true (default 60000; 0 = never). */
  bookmarkIntervalMs?: number
  /** How long reads with a resourceVersion from the future wait before 504 (real: 3000ms). */
  tooLargeResourceVersionWaitMs?: number
  /** First resourceVersion handed out is this + 1. Default 1000. */
  initialResourceVersion?: number
  /** Namespaces present at start. Default: default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[]
  /** Extra resources (e.g. another CRD). */
  resources?: ResourceDefinition[]
  /** Reported by /version. Default 1.31. */
  version?: {major: string; minor: string}
  /**
   * ServiceAccount tokens (tokens.ts): issuer, API audiences, max token expiration, clock, and
   * an authorizer deciding what each user may do (none: everything is allowed).
   */
  tokens?: TokenOptions
}

/** What the apiserver's RequestInfoFactory would say about a request. */
export interface RequestInfo {
  method: string
  path: string
  query: Record<string, string>
  /** get | list | watch | create | update | patch | delete | deletecollection; lower-case method for non-resource requests. */
  verb: string
  isResourceRequest: boolean
  apiGroup?: string
  apiVersion?: string
  resource?: string
  subresource?: string
  namespace?: string
  name?: string
}

export interface RequestRecord extends RequestInfo {
  /** HTTP status sent (0 while a response is still pending). */
  status: number
  /** Authenticated user (`system:serviceaccount:NS:SA` for ServiceAccount tokens); unset for health checks and OIDC discovery. */
  user?: string
  time: number
}

export type RequestFilter =
  | Partial<Pick<RequestInfo, 'method' | 'verb' | 'resource' | 'subresource' | 'namespace' | 'name' | 'apiGroup'>>
  | ((r: RequestRecord) => boolean)

export interface FaultOptions {
  /** HTTP status (default 500). 500 InternalError, 503 ServiceUnavailable, 429 TooManyRequests, 504 Timeout, or any other code. */
  status?: number
  /** Which requests to fail (default: any resource request, i.e. not discovery/version). */
  match?: (req: RequestInfo) => boolean
  /** Retry-After seconds (header + details.retryAfterSeconds). Default 1 for 429/503. */
  retryAfter?: number
  message?: string
}

export interface WatchFilter {
  resource?: string
  apiGroup?: string
  namespace?: string
}

export interface KubeconfigOptions {
  namespace?: string
  /** Token to put in the kubeconfig (default: the server's token, or a dummy one). */
  token?: string
}

export interface K8sApiServer {
  readonly url: string
  readonly port: number
  /** Delay added before processing each request (mutable). */
  latencyMs: number
  /** Every request received, in order. */
  readonly requests: RequestRecord[]
  /** TCP connections accepted so far (a client that keeps connections opens few). */
  readonly connectionsAccepted: number
  /** Current global resourceVersion. */
  readonly resourceVersion: string
  close(): Promise<void>
  writeKubeconfig(path: string, opts?: KubeconfigOptions): Promise<void>
  kubeConfig(opts?: KubeconfigOptions): KubeConfig
  registerResource(def: ResourceDefinition): void
  getObject<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kindOrResource: string,
    namespace: string | undefined,
    name: string,
  ): T | undefined
  listObjects<T extends KubeObject = KubeObject>(apiVersion: string, kindOrResource: string, namespace?: string): T[]
  putObject<T extends KubeObject = KubeObject>(obj: T): T
  deleteObject(apiVersion: string, kindOrResource: string, namespace: string | undefined, name: string): KubeObject | undefined
  countRequests(filter?: RequestFilter): number
  findRequests(filter?: RequestFilter): RequestRecord[]
  clearRequests(): void
  failNext(n: number, opts?: FaultOptions): void
  clearFaults(): void
  openWatches(filter?: WatchFilter): number
  waitForWatches(count: number, filter?: WatchFilter, timeoutMs?: number): Promise<void>
  dropWatches(filter?: WatchFilter): number
  closeWatches(filter?: WatchFilter): number
  expireWatches(filter?: WatchFilter): number
  compact(filter?: WatchFilter): void
  sendBookmarks(): void
  settle(): Promise<void>
  /** `iss` of the ServiceAccount tokens this server issues. */
  readonly serviceAccountIssuer: string
  /** A token for an existing ServiceAccount, as `kubectl create token` gets one. */
  issueServiceAccountToken(namespace: string, name: string, opts?: IssueOptions): IssuedToken
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

export interface HistoryEvent {
  type: WatchEventType
  rv: number
  obj: KubeObject
  prev?: KubeObject
}

export interface Bucket {
  key: string
  objects: Map<string, KubeObject>
  history: HistoryEvent[]
  /** Every event with rv > compactedRv is still in `history`. */
  compactedRv: number
}

export interface Def extends ResourceDefinition {
  storageKey: string
  allowCreateOnUpdate: boolean
  allowUnconditionalUpdate: boolean
  returnDeletedObject: boolean
  generation: boolean
  custom: boolean
  statusSubresource: boolean
}
