/**
 * Validation of ExternalSecret, SecretStore and ClusterSecretStore objects (`kseal.dev/v1`) as
 * untrusted input: a namespace admin writes the first two. Every field is checked (fields.ts),
 * defaults are external-secrets' own, templates are compiled and regexps compiled (RE2) up front,
 * so an object that validates can be rendered. A field kseal does not implement is refused with a
 * message saying so, never ignored. docs/external-secrets.md lists each difference from
 * external-secrets.io v1.
 */
import {parseDuration} from '../core/duration.js'
import {KsealError} from '../core/errors.js'
import {RESERVED_PREFIX} from '../core/names.js'
import {isObj, type Obj} from '../core/guards.js'
import {isDnsLabel, isDnsSubdomain, isLabelValue, isQualifiedName, isSecretKey, join, Reader} from './fields.js'
import {parsePropertyPath} from './property.js'
import {compileRe2} from '../core/regex.js'
import {compileTemplate} from './template/index.js'
import {
  CLUSTER_SECRET_STORE_KIND,
  type DataEntry,
  type DataFromEntry,
  EXTERNAL_API_VERSION,
  EXTERNAL_SECRET_KIND,
  type ExternalSecret,
  type FindRef,
  type LabelSelector,
  type ObjectMeta,
  type ProviderSpec,
  type RemoteRef,
  SECRET_STORE_KIND,
  type SecretKeyRef,
  type SecretStore,
  type ServiceAccountRef,
  type StoreCondition,
  type StoreKind,
  type TargetTemplate,
} from './types.js'

export const LIMITS = {
  data: 500,
  dataFrom: 50,
  templateKeys: 500,
  /** Total template text of one ExternalSecret. */
  templateBytes: 256 * 1024,
  labels: 64,
  annotations: 64,
  metadataBytes: 64 * 1024,
  tags: 9,
  remoteKey: 2048,
  conditions: 32,
  namespacesPerCondition: 1000,
  regexesPerCondition: 32,
  selectorExpressions: 32,
  selectorValues: 256,
  audiences: 8,
} as const

/** Shortest refresh interval (0, fetch once, aside): a tenant cannot make the controller hammer a store. */
export const MIN_REFRESH_MS = 10_000
export const DEFAULT_REFRESH_MS = 3_600_000

/** Labels and annotations with this prefix are kseal's own; no template may set them. */

/** Secret types an ExternalSecret may not create: a service-account-token Secret would make the token controller mint a token for any ServiceAccount the template names. */
const REFUSED_TYPES: Record<string, string> = {
  'kubernetes.io/service-account-token': 'would have Kubernetes mint a token for a ServiceAccount; kseal does not create such Secrets',
}

// ---- shared pieces ----

function meta(r: Reader, o: Obj, namespaced: boolean, defaultNamespace?: string): ObjectMeta {
  const m = isObj(o.metadata) ? o.metadata : r.fail('metadata', 'is required')
  const name = typeof m.name === 'string' ? m.name : ''
  if (!isDnsSubdomain(name)) r.fail('metadata.name', name ? `${JSON.stringify(name.slice(0, 80))} is not a valid name` : 'is required')
  let namespace = ''
  if (namespaced) {
    namespace = typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : (defaultNamespace ?? '')
    if (!isDnsLabel(namespace))
      r.fail('metadata.namespace', namespace ? `${JSON.stringify(namespace.slice(0, 80))} is not a valid namespace` : 'is required')
  }
  const out: ObjectMeta = {name, namespace}
  if (typeof m.uid === 'string') out.uid = m.uid
  if (typeof m.resourceVersion === 'string') out.resourceVersion = m.resourceVersion
  if (typeof m.generation === 'number') out.generation = m.generation
  return out
}

function checkKind(o: unknown, kinds: readonly string[]): Obj {
  if (!isObj(o)) throw new KsealError('ERR_INPUT', 'not a Kubernetes object')
  if (o.apiVersion !== EXTERNAL_API_VERSION || !kinds.includes(o.kind as string)) {
    throw new KsealError(
      'ERR_INPUT',
      `expected apiVersion ${EXTERNAL_API_VERSION} and kind ${kinds.join(' or ')}, not ${JSON.stringify(o.apiVersion ?? null)} ${JSON.stringify(o.kind ?? null)}`,
    )
  }
  return o
}

const label = (what: string, m: ObjectMeta) => `${what} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`

/** Reads the identity of an object for messages even when the rest is broken. */
function identity(o: Obj, kind: string): string {
  const m = isObj(o.metadata) ? o.metadata : {}
  const ns = typeof m.namespace === 'string' && m.namespace ? `${m.namespace}/` : ''
  return `${kind} ${ns}${typeof m.name === 'string' && m.name ? m.name.slice(0, 253) : '(unnamed)'}`
}

// ---- ExternalSecret ----

export interface ParseOptions {
  /** The namespace of an ExternalSecret whose manifest names none (render: --namespace, else `default`). */
  defaultNamespace?: string
}

export function parseExternalSecret(obj: unknown, opts: ParseOptions = {}): ExternalSecret {
  const o = checkKind(obj, [EXTERNAL_SECRET_KIND])
  let r = new Reader(identity(o, EXTERNAL_SECRET_KIND))
  const metadata = meta(r, o, true, opts.defaultNamespace)
  r = new Reader(label(EXTERNAL_SECRET_KIND, metadata))
  const spec = r.object(o.spec, 'spec', ['secretStoreRef', 'refreshInterval', 'refreshPolicy', 'target', 'data', 'dataFrom'])

  const ref = r.object(spec.secretStoreRef, 'spec.secretStoreRef', ['name', 'kind'])
  const secretStoreRef = {
    name: r.string(ref, 'name', 'spec.secretStoreRef', {check: isDnsSubdomain, expect: 'a valid store name'}),
    kind: r.oneOf<StoreKind>(ref, 'kind', 'spec.secretStoreRef', [SECRET_STORE_KIND, CLUSTER_SECRET_STORE_KIND], SECRET_STORE_KIND),
  }

  r.oneOf(spec, 'refreshPolicy', 'spec', ['Periodic'], 'Periodic', {
    CreatedOnce: 'CreatedOnce is not supported; refreshInterval: 0 fetches once',
    OnChange: 'OnChange is not supported; refreshInterval: 0 fetches once',
  })
  const interval = r.optString(spec, 'refreshInterval', 'spec', {max: 32})
  let refreshIntervalMs = DEFAULT_REFRESH_MS
  if (interval !== undefined) {
    try {
      refreshIntervalMs = parseDuration(interval, 'refreshInterval')
    } catch {
      r.fail('spec.refreshInterval', `${JSON.stringify(interval)} is not a duration such as 1h, 30m, 1h30m, 15s or 0`)
    }
    if (refreshIntervalMs !== 0 && refreshIntervalMs < MIN_REFRESH_MS)
      r.fail('spec.refreshInterval', `must be 0 (fetch once) or at least ${MIN_REFRESH_MS / 1000}s`)
  }

  const t = r.optObject(spec, 'target', 'spec', ['name', 'creationPolicy', 'deletionPolicy', 'immutable', 'template']) ?? {}
  const target = {
    name: r.optString(t, 'name', 'spec.target', {check: isDnsSubdomain, expect: 'a valid Secret name'}) || metadata.name,
    creationPolicy: r.oneOf(t, 'creationPolicy', 'spec.target', ['Owner', 'Merge', 'Orphan'] as const, 'Owner', {
      None: 'None (no Secret) is not supported',
    }),
    deletionPolicy: r.oneOf(t, 'deletionPolicy', 'spec.target', ['Retain', 'Delete'] as const, 'Retain', {
      Merge: 'Merge (remove only the keys) is not supported; Retain or Delete',
    }),
    immutable: r.bool(t, 'immutable', 'spec.target'),
    template: template(r, t),
  }

  const data = r.list(spec, 'data', 'spec', LIMITS.data).map((e, i) => dataEntry(r, e, `spec.data[${i}]`))
  const seen = new Set<string>()
  for (const [i, d] of data.entries()) {
    if (seen.has(d.secretKey)) r.fail(`spec.data[${i}].secretKey`, `${JSON.stringify(d.secretKey)} appears twice`)
    seen.add(d.secretKey)
  }
  const dataFrom = r.list(spec, 'dataFrom', 'spec', LIMITS.dataFrom).map((e, i) => dataFromEntry(r, e, `spec.dataFrom[${i}]`))
  if (data.length === 0 && dataFrom.length === 0 && Object.keys(target.template?.data ?? {}).length === 0) {
    r.fail('spec', 'has nothing to fetch: give data, dataFrom or target.template.data')
  }
  return {metadata, secretStoreRef, refreshIntervalMs, target, data, dataFrom}
}

function remoteRef(r: Reader, v: unknown, path: string): RemoteRef {
  const o = r.object(v, path, ['key', 'property', 'version', 'conversionStrategy', 'decodingStrategy', 'metadataPolicy'])
  r.oneOf(o, 'metadataPolicy', path, ['None'], 'None', {Fetch: 'Fetch (tags or labels as values) is not supported'})
  const key = r.string(o, 'key', path, {
    max: LIMITS.remoteKey,
    check: (s) => !/[\u0000-\u001f]/.test(s),
    expect: 'a key without control characters',
  })
  const property = r.optString(o, 'property', path, {max: 512}) || undefined
  if (property !== undefined) {
    try {
      parsePropertyPath(property)
    } catch (e) {
      r.fail(join(path, 'property'), (e as Error).message.replace(/^property "[^"]*": /, ''))
    }
  }
  return {
    key,
    property,
    version: r.optString(o, 'version', path, {max: 256}) || undefined,
    conversionStrategy: r.oneOf(o, 'conversionStrategy', path, ['Default', 'Unicode'] as const, 'Default'),
    decodingStrategy: r.oneOf(o, 'decodingStrategy', path, ['None', 'Base64', 'Base64URL', 'Auto'] as const, 'None'),
  }
}

function dataEntry(r: Reader, v: unknown, path: string): DataEntry {
  const o = r.object(v, path, ['secretKey', 'remoteRef'], {
    sourceRef: 'sourceRef (a store or generator per entry) is not supported; an ExternalSecret reads from its secretStoreRef',
  })
  return {
    secretKey: r.string(o, 'secretKey', path, {check: isSecretKey, expect: 'a valid Secret key ([-._a-zA-Z0-9]+)'}),
    remoteRef: remoteRef(r, o.remoteRef, join(path, 'remoteRef')),
  }
}

function dataFromEntry(r: Reader, v: unknown, path: string): DataFromEntry {
  const o = r.object(v, path, ['extract', 'find'], {
    rewrite: 'rewrite is not supported; name the keys with data[] or a template',
    sourceRef: 'sourceRef (a store or generator per entry) is not supported; an ExternalSecret reads from its secretStoreRef',
  })
  if ((o.extract === undefined || o.extract === null) === (o.find === undefined || o.find === null))
    r.fail(path, 'needs exactly one of extract and find')
  if (o.extract !== undefined && o.extract !== null) return {extract: remoteRef(r, o.extract, join(path, 'extract'))}
  const fp = join(path, 'find')
  const f = r.object(o.find, fp, ['path', 'name', 'tags', 'conversionStrategy', 'decodingStrategy'])
  const name = r.optObject(f, 'name', fp, ['regexp'])
  const find: FindRef = {
    path: r.optString(f, 'path', fp, {max: LIMITS.remoteKey}) || undefined,
    nameRegexp: name ? r.string(name, 'regexp', join(fp, 'name'), {max: 512}) : undefined,
    tags: r.stringMap(f, 'tags', fp, {
      max: LIMITS.tags,
      maxBytes: 8192,
      key: (k) => (k === '' || k.length > 128 ? 'a tag key must have 1 to 128 characters' : undefined),
    }),
    conversionStrategy: r.oneOf(f, 'conversionStrategy', fp, ['Default', 'Unicode'] as const, 'Default'),
    decodingStrategy: r.oneOf(f, 'decodingStrategy', fp, ['None', 'Base64', 'Base64URL', 'Auto'] as const, 'None'),
  }
  if (find.nameRegexp !== undefined) compileRe2(find.nameRegexp, `${r.what}: ${fp}.name.regexp`)
  if (find.nameRegexp === undefined && Object.keys(find.tags ?? {}).length === 0) r.fail(fp, 'needs name.regexp or tags')
  return {find}
}

function metadataMap(r: Reader, o: Obj, key: 'labels' | 'annotations', path: string): Record<string, string> {
  return r.stringMap(o, key, path, {
    max: key === 'labels' ? LIMITS.labels : LIMITS.annotations,
    maxBytes: LIMITS.metadataBytes,
    key: (k) => {
      if (!isQualifiedName(k)) return `${JSON.stringify(k.slice(0, 80))} is not a valid ${key === 'labels' ? 'label' : 'annotation'} key`
      if (k.startsWith(RESERVED_PREFIX)) return `keys starting with ${RESERVED_PREFIX} are kseal's own; a template cannot set them`
      return undefined
    },
    value: (v) => {
      if (v.includes('{{')) return 'kseal does not render templates in labels or annotations (values are written as they are); remove {{ }}'
      if (key === 'labels' && !isLabelValue(v)) return `${JSON.stringify(v.slice(0, 80))} is not a valid label value`
      return undefined
    },
  })
}

function template(r: Reader, t: Obj): TargetTemplate | undefined {
  const path = 'spec.target.template'
  const o = r.optObject(t, 'template', 'spec.target', ['type', 'engineVersion', 'metadata', 'data', 'mergePolicy'], {
    templateFrom: 'templateFrom (templates in ConfigMaps or Secrets) is not supported; write them in template.data',
  })
  if (!o) return undefined
  r.oneOf(o, 'engineVersion', path, ['v2'], 'v2', {v1: 'engine v1 is not supported; kseal speaks v2'})
  const type = r.optString(o, 'type', path, {check: (s) => /^[\x21-\x7e]+$/.test(s), expect: 'a Secret type'}) || undefined
  if (type !== undefined && Object.hasOwn(REFUSED_TYPES, type)) r.fail(join(path, 'type'), `${type} ${REFUSED_TYPES[type]}`)
  const m = r.optObject(o, 'metadata', path, ['labels', 'annotations']) ?? {}
  const data = r.stringMap(o, 'data', path, {
    max: LIMITS.templateKeys,
    maxBytes: LIMITS.templateBytes,
    key: (k) => (isSecretKey(k) ? undefined : `${JSON.stringify(k.slice(0, 80))} is not a valid Secret key ([-._a-zA-Z0-9]+)`),
  })
  for (const [k, text] of Object.entries(data)) compileTemplate(text, `${r.what}: ${path}.data.${k}`)
  return {
    type,
    labels: metadataMap(r, m, 'labels', join(path, 'metadata')),
    annotations: metadataMap(r, m, 'annotations', join(path, 'metadata')),
    data,
    mergePolicy: r.oneOf(o, 'mergePolicy', path, ['Replace', 'Merge'] as const, 'Replace'),
  }
}

// ---- SecretStore / ClusterSecretStore ----

export function parseSecretStore(obj: unknown): SecretStore {
  const o = checkKind(obj, [SECRET_STORE_KIND, CLUSTER_SECRET_STORE_KIND])
  const kind = o.kind as StoreKind
  const cluster = kind === CLUSTER_SECRET_STORE_KIND
  let r = new Reader(identity(o, kind))
  const metadata = meta(r, o, !cluster)
  r = new Reader(label(kind, metadata))
  const spec = r.object(o.spec, 'spec', ['provider', 'conditions', 'controller', 'refreshInterval', 'retrySettings'])
  if (r.optString(spec, 'controller', 'spec'))
    r.fail('spec.controller', 'selects another controller instance; kseal has one controller, leave it empty')
  const ctx: RefContext = {r, cluster, namespace: metadata.namespace}
  const provider = providerSpec(ctx, spec.provider)
  const conditions = r.list(spec, 'conditions', 'spec', LIMITS.conditions).map((c, i) => condition(r, c, `spec.conditions[${i}]`))
  if (!cluster && conditions.length > 0)
    r.fail('spec.conditions', 'only a ClusterSecretStore has conditions; a SecretStore serves its own namespace')
  return {kind, metadata, provider, conditions}
}

interface RefContext {
  r: Reader
  cluster: boolean
  /** The SecretStore's namespace ('' for a ClusterSecretStore). */
  namespace: string
}

/** A reference's namespace may only say what kseal does anyway: the ExternalSecret's namespace. */
function refNamespace(c: RefContext, o: Obj, path: string): void {
  const ns = c.r.optString(o, 'namespace', path, {max: 63})
  if (ns === undefined || ns === '') return
  if (c.cluster)
    c.r.fail(
      join(path, 'namespace'),
      "a ClusterSecretStore's references resolve in the namespace of each ExternalSecret that uses it; remove namespace",
    )
  if (ns !== c.namespace)
    c.r.fail(join(path, 'namespace'), `a SecretStore's references resolve in its own namespace (${c.namespace}), not ${JSON.stringify(ns)}`)
}

function secretKeyRef(c: RefContext, v: unknown, path: string, defaultKey?: string): SecretKeyRef {
  const o = c.r.object(v, path, ['name', 'key', 'namespace'])
  refNamespace(c, o, path)
  const name = c.r.string(o, 'name', path, {check: isDnsSubdomain, expect: 'a valid Secret name'})
  const key = c.r.optString(o, 'key', path, {check: isSecretKey, expect: 'a valid Secret key'}) || defaultKey
  if (!key) c.r.fail(join(path, 'key'), 'is required')
  return {name, key: key!}
}

function serviceAccountRef(c: RefContext, v: unknown, path: string): ServiceAccountRef {
  const o = c.r.object(v, path, ['name', 'namespace', 'audiences'])
  refNamespace(c, o, path)
  return {
    name: c.r.string(o, 'name', path, {check: isDnsSubdomain, expect: 'a valid ServiceAccount name'}),
    audiences: c.r.stringList(o, 'audiences', path, LIMITS.audiences, {maxLength: 512}),
  }
}

function pemBundle(c: RefContext, o: Obj, key: string, path: string): string | undefined {
  const b64 = c.r.optString(o, key, path, {max: 256 * 1024})
  if (!b64) return undefined
  const pem = /^[A-Za-z0-9+/=\s]+$/.test(b64) ? Buffer.from(b64, 'base64').toString('utf8') : ''
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    c.r.fail(join(path, key), 'must be base64-encoded PEM certificates (as in external-secrets, the field is bytes)')
  return pem
}

function providerSpec(c: RefContext, v: unknown): ProviderSpec {
  const {r} = c
  if (!isObj(v)) r.fail('spec.provider', 'is required')
  const names = Object.keys(v as Obj).filter((k) => (v as Obj)[k] !== null && (v as Obj)[k] !== undefined)
  if (names.length !== 1) r.fail('spec.provider', `must name exactly one provider, not ${names.length}`)
  const name = names[0]
  const path = `spec.provider.${name}`
  const p = (v as Obj)[name]
  if (name === 'aws') return awsSpec(c, p, path)
  if (name === 'vault') return vaultSpec(c, p, path)
  if (name === 'kubernetes') return kubernetesSpec(c, p, path)
  return r.fail(path, 'this provider is not supported by kseal (it has aws, vault and kubernetes)')
}

const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-[0-9]+$/
const ROLE_ARN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@/-]{1,512}$/

function awsSpec(c: RefContext, v: unknown, path: string): ProviderSpec {
  const {r} = c
  const unsupported = "is not supported by kseal's aws provider"
  const o = r.object(
    v,
    path,
    ['service', 'region', 'role', 'externalID', 'auth'],
    Object.fromEntries(
      ['additionalRoles', 'sessionTags', 'transitiveTagKeys', 'secretsManager', 'prefix', 'sessionTagsPolicy', 'customSessionTags'].map(
        (k) => [k, unsupported],
      ),
    ),
  )
  const auth = r.optObject(o, 'auth', path, ['secretRef', 'jwt'])
  const ap = join(path, 'auth')
  let a: Extract<ProviderSpec, {type: 'aws'}>['auth'] = {kind: 'default'}
  if (auth?.secretRef && auth?.jwt) r.fail(ap, 'give secretRef or jwt, not both')
  if (auth?.secretRef) {
    const sp = join(ap, 'secretRef')
    const s = r.object(auth.secretRef, sp, ['accessKeyIDSecretRef', 'secretAccessKeySecretRef', 'sessionTokenSecretRef'])
    if (!s.accessKeyIDSecretRef || !s.secretAccessKeySecretRef) r.fail(sp, 'needs accessKeyIDSecretRef and secretAccessKeySecretRef')
    a = {
      kind: 'secretRef',
      accessKeyId: secretKeyRef(c, s.accessKeyIDSecretRef, join(sp, 'accessKeyIDSecretRef')),
      secretAccessKey: secretKeyRef(c, s.secretAccessKeySecretRef, join(sp, 'secretAccessKeySecretRef')),
      sessionToken: s.sessionTokenSecretRef ? secretKeyRef(c, s.sessionTokenSecretRef, join(sp, 'sessionTokenSecretRef')) : undefined,
    }
  } else if (auth?.jwt) {
    const jp = join(ap, 'jwt')
    const j = r.object(auth.jwt, jp, ['serviceAccountRef'])
    if (!j.serviceAccountRef) r.fail(join(jp, 'serviceAccountRef'), 'is required')
    a = {kind: 'jwt', serviceAccount: serviceAccountRef(c, j.serviceAccountRef, join(jp, 'serviceAccountRef'))}
  }
  return {
    type: 'aws',
    service: r.oneOf(o, 'service', path, ['SecretsManager', 'ParameterStore'] as const, null),
    region: r.string(o, 'region', path, {max: 32, check: (s) => AWS_REGION.test(s), expect: 'an AWS region such as eu-west-1'}),
    role: r.optString(o, 'role', path, {max: 2048, check: (s) => ROLE_ARN.test(s), expect: 'an IAM role ARN'}) || undefined,
    externalId: r.optString(o, 'externalID', path, {max: 1224}) || undefined,
    auth: a,
  }
}

function vaultSpec(c: RefContext, v: unknown, path: string): ProviderSpec {
  const {r} = c
  const unsupported = "is not supported by kseal's vault provider"
  const o = r.object(
    v,
    path,
    ['server', 'path', 'version', 'namespace', 'caBundle', 'caProvider', 'auth'],
    Object.fromEntries(['tls', 'readYourWrites', 'forwardInconsistent', 'headers', 'checkAndSet'].map((k) => [k, unsupported])),
  )
  const server = r.string(o, 'server', path, {max: 2048, check: isServerUrl, expect: 'an http(s) URL without credentials'})
  r.oneOf(o, 'version', path, ['v2'], 'v2', {v1: 'KV version 1 is not supported; kseal reads KV v2'})
  const mount = r.optString(o, 'path', path, {
    max: 512,
    check: (s) => /^[\w.-]+(\/[\w.-]+)*\/?$/.test(s) && !s.split('/').some((x) => x === '.' || x === '..'),
    expect: 'a mount path such as secret',
  })
  const caProvider = r.optObject(o, 'caProvider', path, ['type', 'name', 'key', 'namespace'])
  let caSecretRef: SecretKeyRef | undefined
  if (caProvider) {
    const cp = join(path, 'caProvider')
    r.oneOf(caProvider, 'type', cp, ['Secret'], 'Secret', {ConfigMap: 'a ConfigMap CA is not supported; use a Secret or caBundle'})
    caSecretRef = secretKeyRef(c, {name: caProvider.name, key: caProvider.key, namespace: caProvider.namespace}, cp, 'ca.crt')
  }
  const ap = join(path, 'auth')
  const unsupportedAuth = 'is not supported by kseal (it has tokenSecretRef and kubernetes)'
  const auth = r.object(
    o.auth,
    ap,
    ['tokenSecretRef', 'kubernetes', 'namespace'],
    Object.fromEntries(['appRole', 'ldap', 'jwt', 'cert', 'iam', 'userPass', 'gcp'].map((k) => [k, unsupportedAuth])),
  )
  if (Boolean(auth.tokenSecretRef) === Boolean(auth.kubernetes)) r.fail(ap, 'needs exactly one of tokenSecretRef and kubernetes')
  let a: Extract<ProviderSpec, {type: 'vault'}>['auth']
  if (auth.tokenSecretRef) {
    a = {kind: 'token', tokenSecretRef: secretKeyRef(c, auth.tokenSecretRef, join(ap, 'tokenSecretRef'))}
  } else {
    const kp = join(ap, 'kubernetes')
    const k = r.object(auth.kubernetes, kp, ['mountPath', 'role', 'serviceAccountRef', 'secretRef'])
    if (Boolean(k.serviceAccountRef) === Boolean(k.secretRef)) {
      r.fail(kp, "needs exactly one of serviceAccountRef and secretRef (kseal never logs in with the controller's own ServiceAccount)")
    }
    a = {
      kind: 'kubernetes',
      mountPath:
        r.optString(k, 'mountPath', kp, {max: 512, check: (s) => /^[\w.-]+(\/[\w.-]+)*$/.test(s), expect: 'an auth mount path'}) ||
        'kubernetes',
      role: r.string(k, 'role', kp, {max: 512}),
      serviceAccount: k.serviceAccountRef ? serviceAccountRef(c, k.serviceAccountRef, join(kp, 'serviceAccountRef')) : undefined,
      secretRef: k.secretRef ? secretKeyRef(c, k.secretRef, join(kp, 'secretRef'), 'token') : undefined,
    }
  }
  const namespace = r.optString(o, 'namespace', path, {max: 512}) || undefined
  return {
    type: 'vault',
    server: server.replace(/\/+$/, ''),
    path: (mount ?? 'secret').replace(/\/+$/, ''),
    namespace,
    caBundle: pemBundle(c, o, 'caBundle', path),
    caSecretRef,
    auth: a,
    authNamespace: r.optString(auth, 'namespace', ap, {max: 512}) || undefined,
  }
}

function kubernetesSpec(c: RefContext, v: unknown, path: string): ProviderSpec {
  const {r} = c
  const o = r.object(v, path, ['server', 'auth', 'remoteNamespace'], {authRef: 'authRef (a kubeconfig in a Secret) is not supported'})
  const sp = join(path, 'server')
  const s = r.optObject(o, 'server', path, ['url', 'caBundle'], {caProvider: 'caProvider is not supported here; use caBundle'}) ?? {}
  const ap = join(path, 'auth')
  const auth = r.object(o.auth, ap, ['serviceAccount', 'token'], {cert: 'client certificates are not supported (serviceAccount or token)'})
  if (Boolean(auth.serviceAccount) === Boolean(auth.token)) r.fail(ap, 'needs exactly one of serviceAccount and token')
  let a: Extract<ProviderSpec, {type: 'kubernetes'}>['auth']
  if (auth.serviceAccount) {
    a = {kind: 'serviceAccount', serviceAccount: serviceAccountRef(c, auth.serviceAccount, join(ap, 'serviceAccount'))}
  } else {
    const t = r.object(auth.token, join(ap, 'token'), ['bearerToken'])
    a = {kind: 'token', bearerToken: secretKeyRef(c, t.bearerToken, join(ap, 'token.bearerToken'))}
  }
  const url = r.optString(s, 'url', sp, {
    max: 2048,
    check: (u) => u === 'kubernetes.default' || (isServerUrl(u) && u.startsWith('https:')),
    expect: 'an https URL without credentials (a ServiceAccount token is sent to it)',
  })
  return {
    type: 'kubernetes',
    remoteNamespace: r.optString(o, 'remoteNamespace', path, {check: isDnsLabel, expect: 'a namespace name'}) || 'default',
    server: url && url !== 'kubernetes.default' ? url.replace(/\/+$/, '') : undefined,
    caBundle: pemBundle(c, s, 'caBundle', sp),
    auth: a,
  }
}

function isServerUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password && !u.search && !u.hash
  } catch {
    return false
  }
}

function condition(r: Reader, v: unknown, path: string): StoreCondition {
  const o = r.object(v, path, ['namespaceSelector', 'namespaces', 'namespaceRegexes'])
  const c: StoreCondition = {
    namespaceSelector: o.namespaceSelector ? labelSelector(r, o.namespaceSelector, join(path, 'namespaceSelector')) : undefined,
    namespaces: r.stringList(o, 'namespaces', path, LIMITS.namespacesPerCondition, {
      maxLength: 63,
      check: isDnsLabel,
      expect: 'a namespace name',
    }),
    namespaceRegexes: r.stringList(o, 'namespaceRegexes', path, LIMITS.regexesPerCondition, {maxLength: 512}),
  }
  c.namespaceRegexes.forEach((re, i) => compileRe2(re, `${r.what}: ${path}.namespaceRegexes[${i}]`))
  if (!c.namespaceSelector && c.namespaces.length === 0 && c.namespaceRegexes.length === 0)
    r.fail(path, 'needs namespaceSelector, namespaces or namespaceRegexes')
  return c
}

function labelSelector(r: Reader, v: unknown, path: string): LabelSelector {
  const o = r.object(v, path, ['matchLabels', 'matchExpressions'])
  const matchLabels = r.stringMap(o, 'matchLabels', path, {
    max: LIMITS.selectorExpressions,
    maxBytes: 16 * 1024,
    key: (k) => (isQualifiedName(k) ? undefined : 'is not a valid label key'),
    value: (x) => (isLabelValue(x) ? undefined : `${JSON.stringify(x.slice(0, 80))} is not a valid label value`),
  })
  const matchExpressions = r.list(o, 'matchExpressions', path, LIMITS.selectorExpressions).map((e, i) => {
    const ep = `${path}.matchExpressions[${i}]`
    const x = r.object(e, ep, ['key', 'operator', 'values'])
    const operator = r.oneOf(x, 'operator', ep, ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const, null)
    const values = r.stringList(x, 'values', ep, LIMITS.selectorValues, {maxLength: 63, check: isLabelValue, expect: 'a label value'})
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) r.fail(join(ep, 'values'), `must not be empty for ${operator}`)
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0)
      r.fail(join(ep, 'values'), `must be empty for ${operator}`)
    return {key: r.string(x, 'key', ep, {check: isQualifiedName, expect: 'a label key'}), operator, values}
  })
  return {matchLabels, matchExpressions}
}
