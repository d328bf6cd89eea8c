/**
 * The install manifests (deploy/) and the Dockerfile, read as the API server and kustomize would:
 * every property the unsealer's security and availability depend on is asserted here, and the CRD
 * schema is checked against real SealedSecrets (an API server prunes fields its schema lacks).
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import type {Backends} from '../keys/index.js'
import {mergeIntoSealed, sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject} from '../src/sealed/types.js'
import {ROOT} from './support/cli.js'
import {readDockerfile, stageChain} from './support/dockerfile.js'
import {keyringFor, otherRecipient, testBackends} from './support/keys.js'
import {tool} from './support/tools.js'
import {crdYaml} from '../src/sealed/crd.js'
import {externalCrdYaml} from '../src/external/crd.js'
import {parseExternalSecret, parseSecretStore} from '../src/external/schema.js'
import {esManifest, storeManifest} from './support/external.js'
import {checkStructure, type StructuralSchema} from '../src/sealed/structure.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const DEPLOY = path.join(ROOT, 'deploy')
const NS = 'kseal-system'
const POD_LABELS = {'app.kubernetes.io/name': 'kseal-controller'}

function load(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8'))
  for (const d of docs) expect(d.errors).toEqual([])
  return docs.map((d) => d.toJS()).filter((d) => d !== null)
}

let loaded: Obj[] | undefined
const all = () =>
  (loaded ??= readdirSync(DEPLOY)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .flatMap(load))
const find = (kind: string, name?: string) => {
  const found = all().filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  expect(found.length).toBeGreaterThan(0)
  return found
}
const one = (kind: string, name?: string) => {
  const f = find(kind, name)
  expect(f).toHaveLength(1)
  return f[0]
}
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v)

describe('kustomization', () => {
  it('lists every manifest in deploy/, and only files that exist', () => {
    const [k] = load('kustomization.yaml')
    expect(k).toMatchObject({apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization'})
    const files = readdirSync(DEPLOY)
      .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
      .sort()
    expect([...k.resources].sort()).toEqual(files)
    expect(files).toEqual([
      'crd-external.yaml',
      'crd.yaml',
      'deployment.yaml',
      'namespace.yaml',
      'networkpolicy.yaml',
      'pdb.yaml',
      'rbac.yaml',
      'service.yaml',
    ])
  })
  // kustomize itself, when kubectl (which embeds it) is installed: the base builds, and yields exactly the files' objects.
  tool('kubectl').it('builds with kubectl kustomize into exactly these objects', () => {
    const r = spawnSync('kubectl', ['kustomize', DEPLOY], {encoding: 'utf8'})
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`
    const built = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj)
    const sort = (os: Obj[]) => [...os].sort((a, b) => (key(a) < key(b) ? -1 : 1))
    expect(sort(built)).toEqual(sort(all()))
  })
  // Every overlay of deploy/ that the operators' guide shows, written out where its comment says and built.
  tool('kubectl').it("builds every overlay of deploy/ the operators' guide (docs/unsealer.md) shows (kubectl kustomize)", () => {
    const readme = readFileSync(path.join(ROOT, 'docs', 'unsealer.md'), 'utf8')
    const overlays = [...readme.matchAll(/```yaml\n# (overlays\/\S+\/kustomization\.yaml)\n([\s\S]*?)```/g)]
    expect(overlays.length).toBeGreaterThan(0)
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-overlay-'))
    try {
      symlinkSync(DEPLOY, path.join(dir, 'deploy'))
      for (const [, file, body] of overlays) {
        mkdirSync(path.join(dir, path.dirname(file)), {recursive: true})
        writeFileSync(path.join(dir, file), body)
        const r = spawnSync('kubectl', ['kustomize', path.join(dir, path.dirname(file))], {encoding: 'utf8'})
        expect({file, stderr: r.stderr, status: r.status}).toEqual({file, stderr: '', status: 0})
        const built = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj)
        expect(built.length).toBe(all().length)
        const deployment = built.find((o) => o.kind === 'Deployment')!
        expect(deployment.spec.template.spec.containers[0].image).toBe('registry.example.com/kseal:0.1.0')
        const np = built.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'kseal-controller')!
        expect(np.spec.egress[0].to).toEqual([{ipBlock: {cidr: '172.18.0.2/32'}}])
        expect(np.spec.ingress[0].from).toEqual([{ipBlock: {cidr: '172.18.0.2/32'}}])
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
  it('puts every namespaced object in kseal-system', () => {
    const clusterScoped = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding'])
    for (const o of all()) {
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace).toBeUndefined()
      else expect([o.kind, o.metadata.namespace]).toEqual([o.kind, NS])
    }
    expect(one('Namespace').metadata.name).toBe(NS)
  })
})

describe('RBAC', () => {
  const rules = (o: Obj) =>
    Object.fromEntries(
      o.rules.flatMap((r: Obj) =>
        r.apiGroups.flatMap((g: string) => r.resources.map((res: string) => [`${g || 'core'}/${res}`, [...r.verbs].sort()])),
      ),
    )

  it('uses no wildcards and no escalation verbs', () => {
    for (const o of [...find('ClusterRole'), one('Role')]) {
      for (const r of o.rules) {
        for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames', 'nonResourceURLs']) {
          for (const v of r[field] ?? []) expect(v).not.toContain('*')
        }
        for (const v of r.verbs) expect(['escalate', 'bind', 'impersonate']).not.toContain(v)
      }
    }
  })
  it('grants cluster-wide exactly what the controller calls', () => {
    expect(rules(one('ClusterRole', 'kseal-controller'))).toEqual({
      'kseal.dev/sealedsecrets': ['get', 'list', 'watch'],
      'kseal.dev/sealedsecrets/status': ['patch'],
      'kseal.dev/externalsecrets': ['list', 'watch'],
      'kseal.dev/secretstores': ['list', 'watch'],
      'kseal.dev/clustersecretstores': ['list', 'watch'],
      'kseal.dev/externalsecrets/status': ['patch'],
      'core/namespaces': ['get'],
      'core/secrets': ['create', 'delete', 'get', 'list', 'update', 'watch'],
      'core/events': ['create'],
    })
  })
  it('grants ServiceAccount tokens only through a ClusterRole the install binds nowhere (namespaces opt in)', () => {
    expect(rules(one('ClusterRole', 'kseal-controller-tokens'))).toEqual({
      'core/serviceaccounts/token': ['create'],
      'core/serviceaccounts': ['get'],
    })
    expect(find('ClusterRoleBinding').map((b) => b.roleRef.name)).toEqual(['kseal-controller'])
    expect(find('RoleBinding').map((b) => b.roleRef.name)).toEqual(['kseal-controller'])
    const [example] = load('../docs/examples/external/token-rolebinding.yaml')
    expect(example).toMatchObject({
      kind: 'RoleBinding',
      roleRef: {kind: 'ClusterRole', name: 'kseal-controller-tokens'},
      subjects: [{kind: 'ServiceAccount', name: 'kseal-controller', namespace: NS}],
    })
  })
  it('grants in kseal-system the leader Lease (key Secrets fall under the Secret grants)', () => {
    const role = one('Role', 'kseal-controller')
    expect(role.metadata.namespace).toBe(NS)
    expect(rules(role)).toEqual({
      'coordination.k8s.io/leases': ['create', 'get', 'update'],
    })
  })
  it('binds both to the kseal-controller ServiceAccount', () => {
    expect(one('ServiceAccount').metadata).toMatchObject({name: 'kseal-controller', namespace: NS})
    const subject = [{kind: 'ServiceAccount', name: 'kseal-controller', namespace: NS}]
    expect(one('ClusterRoleBinding', 'kseal-controller')).toMatchObject({
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kseal-controller'},
      subjects: subject,
    })
    expect(one('RoleBinding')).toMatchObject({
      metadata: {namespace: NS},
      roleRef: {kind: 'Role', name: 'kseal-controller'},
      subjects: subject,
    })
  })
})

describe('Deployment', () => {
  const d = () => one('Deployment', 'kseal-controller')
  const pod = () => d().spec.template.spec
  const container = () => {
    expect(pod().containers).toHaveLength(1)
    return pod().containers[0]
  }

  it('runs 2 replicas of `kseal controller` as its ServiceAccount', () => {
    expect(d().spec.replicas).toBe(2)
    expect(matches(d().spec.selector.matchLabels, d().spec.template.metadata.labels)).toBe(true)
    expect(d().spec.template.metadata.labels).toMatchObject(POD_LABELS)
    expect(pod().serviceAccountName).toBe('kseal-controller')
    expect(container().args).toEqual(['controller'])
    expect(container().command).toBeUndefined()
    expect(container().image).toMatch(/kseal/)
    expect(container().ports).toEqual([{name: 'http', containerPort: 8080, protocol: 'TCP'}])
  })
  it('passes the pod name and namespace through the downward API', () => {
    const env = Object.fromEntries(container().env.map((e: Obj) => [e.name, e]))
    expect(env.POD_NAME.valueFrom.fieldRef.fieldPath).toBe('metadata.name')
    expect(env.POD_NAMESPACE.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace')
  })
  it('has a hardened pod and container securityContext', () => {
    expect(pod().securityContext).toMatchObject({runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: 'RuntimeDefault'}})
    expect(pod().hostNetwork ?? false).toBe(false)
    expect(pod().hostPID ?? false).toBe(false)
    const sc = container().securityContext
    expect(sc).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: {drop: ['ALL']},
      seccompProfile: {type: 'RuntimeDefault'},
    })
    expect(sc.capabilities.add).toBeUndefined()
    expect(sc.privileged ?? false).toBe(false)
  })
  it('gives the read-only root filesystem a writable /tmp (HOME) from an emptyDir', () => {
    const mount = container().volumeMounts.find((m: Obj) => m.mountPath === '/tmp')
    expect(mount).toBeDefined()
    expect(pod().volumes.find((v: Obj) => v.name === mount.name).emptyDir).toBeDefined()
    expect(container().env.find((e: Obj) => e.name === 'HOME').value).toBe('/tmp')
  })
  it('sets resource requests and limits', () => {
    const r = container().resources
    for (const k of ['requests', 'limits']) {
      expect(r[k].cpu).toBeDefined()
      expect(r[k].memory).toBeDefined()
    }
  })
  it('probes /healthz for liveness and /readyz for readiness on the http port', () => {
    expect(container().livenessProbe.httpGet).toEqual({path: '/healthz', port: 'http'})
    expect(container().readinessProbe.httpGet).toEqual({path: '/readyz', port: 'http'})
  })
})

describe('Service, PodDisruptionBudget, NetworkPolicy', () => {
  it('exposes port 8080 to the http port of the controller pods', () => {
    const s = one('Service', 'kseal-controller')
    expect(s.spec.ports).toEqual([{name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP'}])
    expect(s.spec.selector).toEqual(POD_LABELS)
  })
  it('keeps at least one replica through voluntary disruptions', () => {
    const p = one('PodDisruptionBudget', 'kseal-controller')
    expect(p.apiVersion).toBe('policy/v1')
    expect(p.spec.minAvailable).toBe(1)
    expect(p.spec.selector.matchLabels).toEqual(POD_LABELS)
  })
  it('denies all traffic in kseal-system by default', () => {
    const deny = one('NetworkPolicy', 'default-deny')
    expect(deny.spec.podSelector).toEqual({})
    expect([...deny.spec.policyTypes].sort()).toEqual(['Egress', 'Ingress'])
    expect(deny.spec.ingress).toBeUndefined()
    expect(deny.spec.egress).toBeUndefined()
  })
  it('admits only TCP 8080 to the controller, and lets it reach only the API server and DNS', () => {
    const np = one('NetworkPolicy', 'kseal-controller')
    expect(np.spec.podSelector.matchLabels).toEqual(POD_LABELS)
    expect([...np.spec.policyTypes].sort()).toEqual(['Egress', 'Ingress'])
    expect(np.spec.ingress.length).toBeGreaterThan(0)
    for (const rule of np.spec.ingress) expect(rule.ports).toEqual([{protocol: 'TCP', port: 8080}])
    // Every rule names its callers: the API server (service proxy) by address, and in-cluster callers
    // only from namespaces that opt in with a label.
    for (const rule of np.spec.ingress) expect(rule.from?.length).toBeGreaterThan(0)
    const selectors = np.spec.ingress
      .flatMap((r: Obj) => r.from)
      .filter((f: Obj) => f.namespaceSelector)
      .map((f: Obj) => f.namespaceSelector.matchLabels)
    expect(selectors).toEqual([{'kseal.dev/seal-access': 'true'}, {'kseal.dev/metrics-access': 'true'}])
    expect(np.spec.ingress.flatMap((r: Obj) => r.from).filter((f: Obj) => f.ipBlock)).toHaveLength(1)
    const egress = np.spec.egress.flatMap((r: Obj) => {
      expect(r.ports?.length).toBeGreaterThan(0)
      return r.ports.map((p: Obj) => `${p.protocol}/${p.port}`)
    })
    expect([...egress].sort()).toEqual(['TCP/443', 'TCP/53', 'TCP/6443', 'UDP/53'])
    const dns = np.spec.egress.find((r: Obj) => r.ports.some((p: Obj) => p.port === 53))
    expect(dns.to).toEqual([
      {
        namespaceSelector: {matchLabels: {'kubernetes.io/metadata.name': 'kube-system'}},
        podSelector: {matchLabels: {'k8s-app': 'kube-dns'}},
      },
    ])
  })
})

/** The API server's structural-schema check and pruning of a custom resource (types, required, enum, pattern, minItems; unknown fields pruned), as src/sealed reads SealedSecrets. */
function admit(schema: Obj, value: unknown, at: string, errors: string[]): unknown {
  const r = checkStructure(schema as StructuralSchema, value, {patterns: true})
  errors.push(...r.problems.map((p) => `${at}.${p.path}: ${p.must}`))
  return r.value
}

describe('CustomResourceDefinition', () => {
  let backends: Backends
  let merged: SealedSecretObject
  beforeAll(async () => {
    backends = testBackends()
    const r = await otherRecipient(backends)
    const s = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'db', namespace: 'prod', labels: {app: 'db'}, annotations: {a: 'b'}},
      type: 'Opaque',
      immutable: true,
      stringData: {x: '1', y: '2'},
    }
    merged = await mergeIntoSealed(await sealSecret(s, [r], 'strict'), {...s, stringData: {y: '3', z: '4'}}, [r])
  })
  afterAll(async () => {
    await backends.close()
  })
  const crd = () => one('CustomResourceDefinition', 'sealedsecrets.kseal.dev')
  const v1 = () => {
    expect(crd().spec.versions).toHaveLength(1)
    return crd().spec.versions[0]
  }
  const schema = () => v1().schema.openAPIV3Schema

  it('is generated from src/sealed/crd.ts, the one definition of the SealedSecret (npm run crd)', () => {
    expect(readFileSync(path.join(ROOT, 'deploy', 'crd.yaml'), 'utf8')).toBe(crdYaml())
  })
  it('defines the namespaced kseal.dev/v1 SealedSecret with a status subresource', () => {
    expect(crd().apiVersion).toBe('apiextensions.k8s.io/v1')
    expect(crd().spec).toMatchObject({
      group: 'kseal.dev',
      scope: 'Namespaced',
      names: {kind: 'SealedSecret', plural: 'sealedsecrets', singular: 'sealedsecret', listKind: 'SealedSecretList'},
    })
    expect(v1()).toMatchObject({name: 'v1', served: true, storage: true, subresources: {status: {}}})
  })
  it('prints Synced, its reason and message, and age', () => {
    const cols = Object.fromEntries(v1().additionalPrinterColumns.map((c: Obj) => [c.name, c]))
    expect(cols.Synced.jsonPath).toBe('.status.conditions[?(@.type=="Synced")].status')
    expect(cols.Reason.jsonPath).toBe('.status.conditions[?(@.type=="Synced")].reason')
    expect(cols.Message.jsonPath).toBe('.status.conditions[?(@.type=="Synced")].message')
    expect(cols.Age).toMatchObject({type: 'date', jsonPath: '.metadata.creationTimestamp'})
  })
  it('has a schema for spec and status', () => {
    const s = schema()
    expect(s.properties.spec.required).toEqual(['encryptedData', 'envelope'])
    expect(Object.keys(s.properties.spec.properties).sort()).toEqual(['encryptedData', 'envelope', 'template'])
    expect(s.properties.spec.properties.envelope.properties.scope.enum).toEqual(['strict', 'namespace', 'cluster'])
    expect(Object.keys(s.properties.status.properties).sort()).toEqual(['conditions', 'observedGeneration'])
    expect(s.properties.status.properties.conditions.items.required).toEqual(['type', 'status'])
  })
  it("admits a merged SealedSecret and the controller's status without pruning a field", async () => {
    const obj = {
      ...structuredClone(merged),
      status: {
        observedGeneration: 3,
        conditions: [
          {type: 'Synced', status: 'True', reason: 'Unsealed', message: 'Secret created', lastTransitionTime: '2026-01-01T00:00:00.000Z'},
        ],
      },
    }
    expect(obj.spec.envelope.parts).toHaveLength(2)
    expect(obj.spec.envelope.parts[1].supersedes).toBeDefined()
    expect(obj.spec.template?.immutable).toBe(true)
    const errors: string[] = []
    expect(admit(schema(), obj, '', errors)).toEqual(obj)
    expect(errors).toEqual([])
    // ...and it still opens after the round trip.
    const {unsealSealedSecret} = await import('../src/sealed/unseal.js')
    const keyring = keyringFor(backends, [path.join(ROOT, 'test', 'fixtures', 'keys', 'other.key')])
    const out = await unsealSealedSecret(admit(schema(), obj, '', []) as SealedSecretObject, keyring.unwrap)
    expect(Object.keys(out.secret.data as Obj).sort()).toEqual(['x', 'y', 'z'])
  })
  it('rejects what is not a SealedSecret and prunes unknown fields (so the check above can fail)', () => {
    const bad = structuredClone(merged) as Obj
    bad.spec.envelope.scope = 'galaxy'
    bad.spec.encryptedData.x = 'plaintext'
    bad.spec.extra = 'dropped'
    const errors: string[] = []
    const out = admit(schema(), bad, '', errors) as Obj
    expect(errors).toEqual([expect.stringContaining('.spec.encryptedData.x'), expect.stringContaining('.spec.envelope.scope')])
    expect(out.spec.extra).toBeUndefined()
  })
})

describe('ExternalSecret CustomResourceDefinitions', () => {
  const crd = (plural: string) => one('CustomResourceDefinition', `${plural}.kseal.dev`)
  const schemaOf = (plural: string) => crd(plural).spec.versions[0].schema.openAPIV3Schema
  const pluralOf: Record<string, string> = {
    ExternalSecret: 'externalsecrets',
    SecretStore: 'secretstores',
    ClusterSecretStore: 'clustersecretstores',
  }

  it('are generated from src/external/crd.ts (npm run crd)', () => {
    expect(readFileSync(path.join(ROOT, 'deploy', 'crd-external.yaml'), 'utf8')).toBe(externalCrdYaml())
  })
  it('define the kseal.dev/v1 ExternalSecret (status subresource), SecretStore and the cluster-scoped ClusterSecretStore', () => {
    expect(crd('externalsecrets').spec).toMatchObject({scope: 'Namespaced', names: {kind: 'ExternalSecret'}})
    expect(crd('externalsecrets').spec.versions[0].subresources).toEqual({status: {}})
    expect(crd('secretstores').spec).toMatchObject({scope: 'Namespaced', names: {kind: 'SecretStore'}})
    expect(crd('clustersecretstores').spec).toMatchObject({scope: 'Cluster', names: {kind: 'ClusterSecretStore'}})
    // external-secrets' own short names (es, ss, css) stay theirs: both can be installed side by side.
    const shorts = ['externalsecrets', 'secretstores', 'clustersecretstores'].flatMap((p) => crd(p).spec.names.shortNames)
    expect(shorts).toEqual(['kes', 'kss', 'kcss'])
  })
  it("admits every manifest the validator accepts unchanged (the example, each policy), and the controller's status", () => {
    const example = load('../docs/examples/external/db.yaml')
    const objs = [
      ...example,
      esManifest('a', 'ns', {
        secretStoreRef: {name: 's'},
        target: {creationPolicy: 'Merge', deletionPolicy: 'Delete', immutable: true},
        data: [{secretKey: 'k', remoteRef: {key: 'x', decodingStrategy: 'Auto', conversionStrategy: 'Unicode'}}],
      }),
      esManifest('b', 'ns', {
        refreshInterval: '0',
        secretStoreRef: {name: 's', kind: 'ClusterSecretStore'},
        target: {creationPolicy: 'Orphan', template: {mergePolicy: 'Merge', data: {x: '{{ .k }}'}}},
        dataFrom: [{find: {path: 'p/', name: {regexp: '^a'}, tags: {t: 'v'}}}],
      }),
      storeManifest('v', 'ns', {
        vault: {
          server: 'https://vault:8200',
          path: 'secret',
          version: 'v2',
          auth: {kubernetes: {mountPath: 'kubernetes', role: 'r', serviceAccountRef: {name: 'sa'}}},
        },
      }),
      storeManifest(
        'c',
        undefined,
        {kubernetes: {remoteNamespace: 'src', auth: {serviceAccount: {name: 'reader'}}}},
        {conditions: [{namespaces: ['a'], namespaceSelector: {matchLabels: {x: 'y'}}}]},
      ),
      {
        ...esManifest('c', 'ns', {secretStoreRef: {name: 's'}, data: [{secretKey: 'k', remoteRef: {key: 'x'}}]}),
        status: {
          observedGeneration: 2,
          refreshTime: '2026-01-01T00:00:00.000Z',
          syncedResourceVersion: '1234',
          conditions: [
            {type: 'Ready', status: 'True', reason: 'SecretSynced', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00.000Z'},
            {
              type: 'SecretSynced',
              status: 'False',
              reason: 'SecretSyncedError',
              message: 'x',
              lastTransitionTime: '2026-01-01T00:00:00.000Z',
            },
          ],
        },
      },
    ]
    for (const o of objs) {
      if (o.kind === 'ExternalSecret') parseExternalSecret(o)
      else parseSecretStore(o)
      const errors: string[] = []
      expect(JSON.parse(JSON.stringify(admit(schemaOf(pluralOf[o.kind]), o, '', errors)))).toEqual(o)
      expect(errors).toEqual([])
    }
  })
  it('refuses a policy the validator refuses, and keeps an unknown spec field for the validator to name (no silent pruning)', () => {
    const bad = esManifest('a', 'ns', {
      secretStoreRef: {name: 's'},
      target: {creationPolicy: 'None'},
      dataFrom: [{extract: {key: 'x'}, rewrite: []}],
    })
    const errors: string[] = []
    const out = admit(schemaOf('externalsecrets'), bad, '', errors) as Obj
    expect(errors).toEqual([expect.stringContaining('.spec.target.creationPolicy: must be one of Owner, Merge, Orphan')])
    expect(out.spec.dataFrom[0].rewrite).toEqual([])
    expect(() => parseExternalSecret({...bad, spec: {...bad.spec, target: {}}})).toThrow(/rewrite is not supported/)
  })
})

describe('Dockerfile', () => {
  const stages = readDockerfile()
  const last = stageChain(stages, stages.at(-1)!)
  const lastStage = last.instructions.map((i) => i.line)

  it('builds in a node:20 stage and runs in a slim node:20 image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(stages[0]).toMatchObject({from: 'node:20-bookworm-slim', name: 'build'})
    expect(last.base).toMatch(/^(node:20-\S*slim|gcr\.io\/distroless\/nodejs20\S*)$/)
    expect(lastStage.some((l) => /^COPY --from=build /.test(l))).toBe(true)
    expect(lastStage.some((l) => /npm (install|i) /.test(l))).toBe(false)
  })
  it('runs as the unprivileged user 65532 with the kseal entrypoint', () => {
    const users = lastStage.filter((l) => /^USER /.test(l))
    expect(users.at(-1)).toMatch(/^USER 65532(:65532)?$/)
    expect(lastStage.filter((l) => /^ENTRYPOINT /.test(l)).at(-1)).toBe('ENTRYPOINT ["node", "/app/bin/run.js"]')
    expect(lastStage.indexOf(users.at(-1)!)).toBeLessThan(lastStage.findIndex((l) => /^ENTRYPOINT /.test(l)))
  })
  it('builds the Argo CD sidecar (target argocd-cmp) from the same build: kseal, kseal-krm and kustomize on PATH, user 999, nothing from the npm registry', () => {
    const all = stageChain(
      stages,
      stages.find((s) => s.name === 'argocd-cmp')!,
    ).instructions.map((i) => i.line)
    expect(all).toContain('COPY --from=build /src/dist ./dist')
    expect(all.some((l) => /npm (install|i) |kseal@/.test(l))).toBe(false)
    expect(all).toContain('RUN ln -s /app/bin/run.js /usr/local/bin/kseal && ln -s /app/bin/kseal-krm.js /usr/local/bin/kseal-krm')
    expect(all.some((l) => /^COPY --from=kustomize \S+ \/usr\/local\/bin\/kustomize$/.test(l))).toBe(true)
    expect(all.filter((l) => /^USER /.test(l)).at(-1)).toBe('USER 999')
    expect(stages.find((s) => s.name === 'kustomize')?.from).toMatch(/^registry\.k8s\.io\/kustomize\/kustomize:v5\./)
  })
})
