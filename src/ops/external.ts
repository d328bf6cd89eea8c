/**
 * What `kseal external render` does: reads ExternalSecrets (and stores) from files, fetches with the
 * caller's own credentials, and prints the Secret each would produce — through renderExternalSecret,
 * the function the controller uses, so what is shown is what the cluster gets.
 *
 * Credentials from outside the cluster: AWS from the caller's standard chain (a store's access-key
 * Secret or role still apply; its jwt auth, which needs the cluster's token issuer trusted by IAM,
 * is replaced by the caller's chain); Vault from VAULT_TOKEN (and VAULT_ADDR, VAULT_CACERT) when set,
 * else the store's auth; kubernetes with the caller's kubeconfig identity. References (Secrets,
 * ServiceAccounts, namespace labels) come from --secrets files first, then the kubeconfig's cluster,
 * loaded only when needed. Values are masked (`<32 bytes>`) unless asked for.
 */
import {readFileSync} from 'node:fs'
import type {KubeConfig} from '@kubernetes/client-node'
import {loadKubeConfig, type KubeOptions} from '../kube/config.js'
import {isKsealError, keyFileError, KsealError, type Where} from '../core/errors.js'
import {readStdin, readText, STDIN} from '../core/files.js'
import {findMergeKey, parseManifests} from '../manifest/parse.js'
import {renderJson, toYaml} from '../manifest/objects.js'
import {kubeAccess, manifestAccess} from '../external/access.js'
import {isObj, type Obj} from '../core/guards.js'
import {openProvider, providerLabel, type ProviderContext} from '../external/providers/index.js'
import {renderExternalSecret, type RenderResult} from '../external/render.js'
import {parseExternalSecret, parseSecretStore} from '../external/schema.js'
import {esLabel, type StoreAccess} from '../external/store.js'
import {
  CLUSTER_SECRET_STORE_KIND,
  EXTERNAL_API_VERSION,
  EXTERNAL_GROUP,
  EXTERNAL_SECRET_KIND,
  EXTERNAL_VERSION,
  type ExternalSecret,
  SECRET_STORE_KIND,
  type SecretObject,
  type SecretStore,
} from '../external/types.js'

export interface PreviewOptions {
  /** Files (or `-`) holding ExternalSecrets, and maybe their stores. */
  files: string[]
  stores: string[]
  secrets: string[]
  showValues: boolean
  output: 'yaml' | 'json'
  namespace?: string
  kube: KubeOptions
  env: Record<string, string | undefined>
}

export interface PreviewResult {
  stdout: string
  errors: KsealError[]
  notes: string[]
}

interface Located {
  obj: Obj
  where: Where
}

const OUR_KINDS = new Set([EXTERNAL_SECRET_KIND, SECRET_STORE_KIND, CLUSTER_SECRET_STORE_KIND])

/** The objects of manifest files (Lists flattened), read as Kubernetes reads YAML. */
async function readObjects(file: string): Promise<Located[]> {
  const label = file === STDIN ? undefined : file
  const text = label === undefined ? await readStdin() : await readText(label)
  const p = parseManifests(text, label)
  const out: Located[] = []
  p.docs.forEach((doc, i) => {
    const where: Where = {file: label ?? '(stdin)', document: i + 1}
    if (doc.contents === null) return
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    const objs =
      isObj(js) && typeof js.kind === 'string' && js.kind.endsWith('List') && Array.isArray(js.items)
        ? js.items.filter(isObj)
        : isObj(js)
          ? [js]
          : []
    if (objs.some((o) => OUR_KINDS.has(o.kind as string)) && findMergeKey(doc.contents)) {
      throw new KsealError(
        'ERR_INPUT',
        'uses a YAML merge key (<<): kubectl would merge in fields that kseal reads differently; write the keys out instead',
        where,
      )
    }
    for (const o of objs) out.push({obj: o, where})
  })
  return out
}

/** `<32 bytes>` for each value: never a prefix, never a hash. */
function maskSecret(s: SecretObject): Obj {
  return {...s, data: Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, `<${Buffer.from(v, 'base64').length} bytes>`]))}
}

function describe(es: ExternalSecret, store: SecretStore, r: RenderResult): string[] {
  const lines = [`${esLabel(es)} via ${providerLabel(store)}: ${r.calls} remote call${r.calls === 1 ? '' : 's'}`]
  for (const s of r.sources) {
    const what = s.find
      ? `find${s.find.path ? ` path ${JSON.stringify(s.find.path)}` : ''}${s.find.regexp ? ` name ${JSON.stringify(s.find.regexp)}` : ''}${s.find.tags ? ` tags ${JSON.stringify(s.find.tags)}` : ''}: ${s.find.matched} found`
      : `${JSON.stringify(s.remoteKey)}${s.version ? ` version ${s.version}` : ''}${s.property ? ` property ${JSON.stringify(s.property)}` : ''}`
    lines.push(`  ${s.entry}: ${what}${s.missing ? ' (gone)' : ''}${s.secretKeys.length ? ` → ${s.secretKeys.join(', ')}` : ''}`)
  }
  if (!r.secret)
    lines.push(
      `  every remote key is gone and deletionPolicy is Delete: the controller deletes Secret ${es.metadata.namespace}/${es.target.name}`,
    )
  else if (es.target.creationPolicy === 'Merge')
    lines.push(`  creationPolicy Merge: these keys are written into the existing Secret ${es.metadata.namespace}/${es.target.name}`)
  return lines
}

export async function preview(o: PreviewOptions): Promise<PreviewResult> {
  const errors: KsealError[] = []
  const notes = new Set<string>()
  const located: Located[] = []
  for (const f of [...o.files, ...o.stores]) {
    try {
      located.push(...(await readObjects(f)))
    } catch (e) {
      if (!isKsealError(e)) throw e
      errors.push(e.at({file: f === STDIN ? '(stdin)' : f}))
    }
  }
  const refs: Obj[] = []
  for (const f of o.secrets) {
    try {
      refs.push(...(await readObjects(f)).map((l) => l.obj))
    } catch (e) {
      if (!isKsealError(e)) throw e
      errors.push(e.at({file: f}))
    }
  }

  let kc: Promise<KubeConfig> | undefined
  const kube = () => (kc ??= loadKubeConfig({...o.kube, env: o.env}))
  const access: StoreAccess = manifestAccess(refs, async () => kubeAccess(await kube()))
  const defaultNamespace = o.namespace ?? 'default'

  const externalSecrets: {es: ExternalSecret; where: Where}[] = []
  const stores: SecretStore[] = []
  for (const {obj, where} of located) {
    const kind = obj.kind as string
    if (typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith('external-secrets.io/') && OUR_KINDS.has(kind)) {
      errors.push(
        new KsealError(
          'ERR_INPUT',
          `${kind} has apiVersion ${obj.apiVersion}: kseal reads ${EXTERNAL_API_VERSION} (the same fields; docs/external-secrets.md lists the differences)`,
          where,
        ),
      )
      continue
    }
    if (obj.apiVersion !== EXTERNAL_API_VERSION || !OUR_KINDS.has(kind)) continue
    try {
      if (kind === EXTERNAL_SECRET_KIND) externalSecrets.push({es: parseExternalSecret(obj, {defaultNamespace}), where})
      else stores.push(parseSecretStore(obj))
    } catch (e) {
      if (!isKsealError(e)) throw e
      errors.push(e.at(where))
    }
  }
  if (externalSecrets.length === 0 && errors.length === 0)
    errors.push(new KsealError('ERR_INPUT', `no ExternalSecret (${EXTERNAL_API_VERSION}) in ${o.files.join(', ')}`))

  const docs: {lines: string[]; secret: Obj | null}[] = []
  for (const {es, where} of externalSecrets) {
    try {
      const store = await findStore(es, stores, kube)
      const ctx = await providerContext(store, es.metadata.namespace, access, o, kube, notes)
      const provider = await openProvider(store, ctx)
      try {
        const r = await renderExternalSecret(es, store, {provider, namespaceLabels: (ns) => access.namespaceLabels(ns)})
        docs.push({
          lines: describe(es, store, r),
          secret: r.secret ? (o.showValues ? (r.secret as unknown as Obj) : maskSecret(r.secret)) : null,
        })
      } finally {
        await provider.close()
      }
    } catch (e) {
      if (!isKsealError(e)) throw e
      errors.push(e.at(where))
    }
  }

  let stdout: string
  if (o.output === 'json') {
    stdout = renderJson(docs.flatMap((d) => (d.secret ? [d.secret] : [])))
  } else {
    stdout = docs.map((d) => `${d.lines.map((l) => `# ${l}`).join('\n')}\n${d.secret ? toYaml(d.secret) : ''}`).join('---\n')
  }
  if (!o.showValues && docs.some((d) => d.secret))
    notes.add('values are masked; --show-values prints them (the output is then a plaintext Secret: keep it out of git)')
  return {stdout, errors, notes: [...notes]}
}

async function findStore(es: ExternalSecret, stores: SecretStore[], kube: () => Promise<KubeConfig>): Promise<SecretStore> {
  const ref = es.secretStoreRef
  const ns = ref.kind === SECRET_STORE_KIND ? es.metadata.namespace : ''
  const local = stores.find((s) => s.kind === ref.kind && s.metadata.name === ref.name && s.metadata.namespace === ns)
  if (local) return local
  let obj: unknown
  try {
    const kc = await kube()
    const {loadK8s} = await import('../kube/config.js')
    const {apiClient} = await import('../kube/agents.js')
    const k8s = await loadK8s()
    const api = apiClient(k8s, kc, k8s.CustomObjectsApi)
    obj =
      ref.kind === SECRET_STORE_KIND
        ? await api.getNamespacedCustomObject({
            group: EXTERNAL_GROUP,
            version: EXTERNAL_VERSION,
            namespace: ns,
            plural: 'secretstores',
            name: ref.name,
          })
        : await api.getClusterCustomObject({
            group: EXTERNAL_GROUP,
            version: EXTERNAL_VERSION,
            plural: 'clustersecretstores',
            name: ref.name,
          })
  } catch (e) {
    const why = isKsealError(e)
      ? e.message
      : `the cluster has none (${String((e as {code?: unknown}).code ?? (e as Error).message)
          .split('\n')[0]
          .slice(0, 120)})`
    throw new KsealError(
      'ERR_INPUT',
      `${esLabel(es)}: ${ref.kind} ${ns ? `${ns}/` : ''}${ref.name} is not in the files given; pass it with --store FILE (${why})`,
    )
  }
  return parseSecretStore(obj)
}

async function providerContext(
  store: SecretStore,
  namespace: string,
  access: StoreAccess,
  o: PreviewOptions,
  kube: () => Promise<KubeConfig>,
  notes: Set<string>,
): Promise<ProviderContext> {
  const ctx: ProviderContext = {namespace, access}
  const p = store.provider
  if (p.type === 'aws') {
    ctx.aws = {ignoreJwt: true}
    if (p.auth.kind === 'jwt')
      notes.add(`${providerLabel(store)}: jwt auth needs the cluster's token issuer; your own AWS credentials are used instead`)
  } else if (p.type === 'vault') {
    const env = o.env
    let ca: string | undefined
    if (env.VAULT_CACERT) {
      try {
        ca = readFileSync(env.VAULT_CACERT, 'utf8')
      } catch (e) {
        throw keyFileError(e, env.VAULT_CACERT)
      }
    }
    ctx.vault = {token: env.VAULT_TOKEN || undefined, address: env.VAULT_ADDR || undefined, ca}
    if (env.VAULT_TOKEN) notes.add(`${providerLabel(store)}: VAULT_TOKEN is used instead of the store's auth`)
    if (env.VAULT_ADDR) notes.add(`${providerLabel(store)}: VAULT_ADDR is used instead of ${p.server}`)
  } else {
    ctx.kubernetes = {kubeConfig: await kube()}
    notes.add(`${providerLabel(store)}: your kubeconfig's identity reads the Secrets, not the store's ServiceAccount (RBAC may differ)`)
  }
  return ctx
}
