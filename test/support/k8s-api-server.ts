/**
 * In-memory Kubernetes API server for tests, served over real HTTP.
 *
 * It aims to reproduce what a real kube-apiserver (~v1.31) does on the wire for the resources kseal
 * touches: paths, status codes, `Status` error bodies (reason/message/details as the apiserver
 * builds them), a global etcd-like resourceVersion, watch streams (newline-delimited JSON over a
 * chunked response, replay from a bounded per-resource history, 410 `Expired` ERROR events, selector
 * transitions turned into ADDED/DELETED like the watch cache does), optimistic concurrency,
 * status subresources, generation, finalizers, ownerReference garbage collection and the Secret /
 * Event / Lease decoding and validation rules that bite controllers in production.
 *
 * This file is the public entry; the server lives in k8s-api-server/, one file per concern:
 * - types.ts        the public types (options, ResourceDefinition, the K8sApiServer handle) and the storage records
 * - server.ts       the Server: lifecycle, kubeconfig, resource registry, storage and resourceVersion (commit,
 *                   MVCC snapshot), direct store access, request log, fault injection, watch control
 * - http.ts         HTTP routing: health, discovery, authentication and authorization, verbs to handlers
 * - request.ts      what the apiserver's RequestInfoFactory makes of a path (verb, group, resource, …)
 * - list.ts         list (resourceVersion semantics, pagination, continue tokens)
 * - write.ts        create, update, patch, delete (optimistic concurrency, generation, finalizers)
 * - watch.ts        watch streams (history replay, selector transitions, bookmarks, 410 Expired)
 * - gc.ts           the garbage collector and namespace controller emulation
 * - decode.ts       typed decoding of request bodies (type meta, unknown fields, times, omitempty)
 * - validation.ts   ObjectMeta validation (names, labels, annotations, ownerReferences, finalizers)
 * - selectors.ts    label and field selectors
 * - patch.ts        JSON patch, JSON merge patch, strategic merge patch
 * - status.ts       `Status` error bodies as the apiserver words them, field.Error formatting, injected faults
 * - tokens.ts       ServiceAccount tokens, TokenReview, OIDC discovery, the authorizer hook
 * - resources/      built-in resource definitions with their decoding and validation (Secret, Event, Lease, …)
 * - util.ts         small helpers (clone, deep equality, resourceVersion keys)
 *
 * A new resource kind (a CRD) needs no change here: pass it in `options.resources` or call
 * `server.registerResource(def)` from your own test/support file.
 */
export type {
  FaultOptions,
  FieldError,
  K8sApiServer,
  K8sApiServerOptions,
  KubeconfigOptions,
  KubeObject,
  RequestFilter,
  RequestInfo,
  RequestRecord,
  ResourceDefinition,
  WatchFilter,
} from './k8s-api-server/types.js'
export {StatusError, errors, faultError, conflictError} from './k8s-api-server/status.js'
export {goBase64Decode} from './k8s-api-server/resources/secret.js'
export {resolveRequest} from './k8s-api-server/request.js'
export {EXTERNAL_DEFINITIONS, SEALED_SECRET_DEFINITION, builtinResources} from './k8s-api-server/resources/builtins.js'
export {startK8sApiServer} from './k8s-api-server/server.js'
export type {AuthorizationAttributes, Authorizer, IssueOptions, IssuedToken, TokenOptions, UserInfo} from './k8s-api-server/tokens.js'

/*
 * SIMPLIFICATIONS (things a real kube-apiserver does that this one does not):
 * - JSON only on the wire (plus YAML request bodies); no protobuf, CBOR, Table output or aggregated discovery.
 * - Server-side apply (application/apply-patch+yaml) answers 415; no metadata.managedFields are kept.
 * - Strategic merge patch only knows the merge keys of metadata.finalizers / metadata.ownerReferences.
 * - CRDs have no OpenAPI schema: no pruning, defaulting or schema validation; objects are stored as sent.
 * - No RBAC objects: an optional authorizer function (options.tokens) decides; no admission webhooks, quota,
 *   Event TTL, graceful deletion periods or pod-specific behaviour. ServiceAccount tokens: see k8s-api-server/tokens.ts.
 * - The watch history is a fixed-size ring per resource (the real cache is sized/aged dynamically).
 * - Typed "omitempty" is approximated by dropping nulls and empty metadata collections for built-ins.
 */
