/**
 * The ExternalSecret API (`kseal.dev/v1`) after validation: what schema.ts makes of the objects a
 * namespace admin (ExternalSecret, SecretStore) or a cluster admin (ClusterSecretStore) writes.
 * Field names are those of external-secrets.io v1, so manifests move over by changing apiVersion;
 * docs/external-secrets.md lists every difference. Everything here is plain data: no values, no
 * clients; providers/ turns a store into a client, render.ts turns all of it into a Secret.
 */

export const EXTERNAL_GROUP = 'kseal.dev'
export const EXTERNAL_VERSION = 'v1'
export const EXTERNAL_API_VERSION = `${EXTERNAL_GROUP}/${EXTERNAL_VERSION}`
export const EXTERNAL_SECRET_KIND = 'ExternalSecret'
export const SECRET_STORE_KIND = 'SecretStore'
export const CLUSTER_SECRET_STORE_KIND = 'ClusterSecretStore'
export const EXTERNAL_SECRET_PLURAL = 'externalsecrets'
export const SECRET_STORE_PLURAL = 'secretstores'
export const CLUSTER_SECRET_STORE_PLURAL = 'clustersecretstores'

export type StoreKind = typeof SECRET_STORE_KIND | typeof CLUSTER_SECRET_STORE_KIND

export interface ObjectMeta {
  name: string
  /** '' for a ClusterSecretStore. */
  namespace: string
  uid?: string
  resourceVersion?: string
  generation?: number
}

// ---- ExternalSecret ----

export type CreationPolicy = 'Owner' | 'Merge' | 'Orphan'
export type DeletionPolicy = 'Retain' | 'Delete'
export type ConversionStrategy = 'Default' | 'Unicode'
export type DecodingStrategy = 'None' | 'Base64' | 'Base64URL' | 'Auto'
export type TemplateMergePolicy = 'Replace' | 'Merge'

/** Where one value lives in a store: `data[].remoteRef` and `dataFrom[].extract`. */
export interface RemoteRef {
  key: string
  /** A JSON field (dotted path, see property.ts) or, for the kubernetes provider, a Secret key. */
  property?: string
  /** Provider-specific: an AWS stage or `uuid/ID`, an SSM version or label, a Vault KV version. */
  version?: string
  conversionStrategy: ConversionStrategy
  decodingStrategy: DecodingStrategy
}

export interface DataEntry {
  secretKey: string
  remoteRef: RemoteRef
}

export interface FindRef {
  /** Only names under this path (a prefix; a folder for Vault and SSM). */
  path?: string
  /** RE2 syntax, matched anywhere in the name (as Go's regexp.MatchString). */
  nameRegexp?: string
  tags?: Record<string, string>
  conversionStrategy: ConversionStrategy
  decodingStrategy: DecodingStrategy
}

export type DataFromEntry = {extract: RemoteRef; find?: undefined} | {find: FindRef; extract?: undefined}

export interface TargetTemplate {
  type?: string
  labels: Record<string, string>
  annotations: Record<string, string>
  /** Secret key → template text (template/). Empty: the fetched keys are the Secret's data. */
  data: Record<string, string>
  mergePolicy: TemplateMergePolicy
}

export interface Target {
  /** The Secret's name (default: the ExternalSecret's). */
  name: string
  creationPolicy: CreationPolicy
  deletionPolicy: DeletionPolicy
  immutable: boolean
  template?: TargetTemplate
}

export interface StoreRef {
  name: string
  kind: StoreKind
}

export interface ExternalSecret {
  metadata: ObjectMeta
  secretStoreRef: StoreRef
  /** ms between fetches; 0 = fetch once. */
  refreshIntervalMs: number
  target: Target
  data: DataEntry[]
  dataFrom: DataFromEntry[]
}

// ---- Stores ----

/** A key of a Secret: resolved in the ExternalSecret's namespace, never anywhere else. */
export interface SecretKeyRef {
  name: string
  key: string
}

/** A ServiceAccount of the ExternalSecret's namespace, for a TokenRequest. */
export interface ServiceAccountRef {
  name: string
  audiences: string[]
}

export type AwsService = 'SecretsManager' | 'ParameterStore'

export type AwsAuth =
  | {kind: 'default'}
  | {kind: 'secretRef'; accessKeyId: SecretKeyRef; secretAccessKey: SecretKeyRef; sessionToken?: SecretKeyRef}
  | {kind: 'jwt'; serviceAccount: ServiceAccountRef}

export interface AwsProviderSpec {
  type: 'aws'
  service: AwsService
  region: string
  /** A role to assume (with the credentials `auth` gives). */
  role?: string
  externalId?: string
  auth: AwsAuth
}

export type VaultAuth =
  | {kind: 'token'; tokenSecretRef: SecretKeyRef}
  | {kind: 'kubernetes'; mountPath: string; role: string; serviceAccount?: ServiceAccountRef; secretRef?: SecretKeyRef}

export interface VaultProviderSpec {
  type: 'vault'
  server: string
  /** The KV v2 mount (default `secret`). */
  path: string
  namespace?: string
  /** PEM CA certificates for an https server. */
  caBundle?: string
  caSecretRef?: SecretKeyRef
  auth: VaultAuth
  /** Namespace to log in to (default: `namespace`). */
  authNamespace?: string
}

export type KubernetesAuth = {kind: 'serviceAccount'; serviceAccount: ServiceAccountRef} | {kind: 'token'; bearerToken: SecretKeyRef}

export interface KubernetesProviderSpec {
  type: 'kubernetes'
  remoteNamespace: string
  /** API server URL (default: the cluster the controller runs in). */
  server?: string
  caBundle?: string
  auth: KubernetesAuth
}

export type ProviderSpec = AwsProviderSpec | VaultProviderSpec | KubernetesProviderSpec

export interface LabelSelectorRequirement {
  key: string
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'
  values: string[]
}

export interface LabelSelector {
  matchLabels: Record<string, string>
  matchExpressions: LabelSelectorRequirement[]
}

/** One condition of a ClusterSecretStore: a namespace qualifies when it meets any part of any condition. */
export interface StoreCondition {
  namespaceSelector?: LabelSelector
  namespaces: string[]
  namespaceRegexes: string[]
}

export interface SecretStore {
  kind: StoreKind
  metadata: ObjectMeta
  provider: ProviderSpec
  /** ClusterSecretStore only; empty = every namespace may use it. */
  conditions: StoreCondition[]
}

/** The Secret kseal writes (a v1 Secret, data base64-encoded). */
export interface SecretObject {
  apiVersion: 'v1'
  kind: 'Secret'
  metadata: {
    name: string
    namespace: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    ownerReferences?: OwnerReference[]
    resourceVersion?: string
    uid?: string
    [k: string]: unknown
  }
  type: string
  data: Record<string, string>
  immutable?: boolean
}

export interface OwnerReference {
  apiVersion: string
  kind: string
  name: string
  uid: string
  controller?: boolean
  blockOwnerDeletion?: boolean
}
