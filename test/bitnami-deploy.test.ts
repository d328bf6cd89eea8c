/**
 * The optional install pieces for sealed-secrets' SealedSecrets: the kustomize component
 * deploy/bitnami (RBAC for bitnami.com SealedSecrets, the controller run with --bitnami) builds on the
 * base, and its RBAC against what a real `kseal controller --bitnami` does through the Kubernetes API
 * test server: with the component, every request the controller makes is allowed by deploy/rbac.yaml
 * and deploy/bitnami/rbac.yaml together, and every grant the component adds is used (test/rbac.test.ts
 * proves the same for the base alone, where every base grant is used).
 */
import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import {rsaKid} from '../keys/rsa.js'
import {keySecret, TRUST_SECRET, trustRootOf} from '../src/sealed/sealing-key.js'
import {BITNAMI_SEALED_DEFINITION, interopPair, SEALED_SECRETS} from './support/bitnami.js'
import {ROOT} from './support/cli.js'
import {type Replica, startReplica, stopReplica} from './support/controller.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'
import {tool} from './support/tools.js'
import {until} from './support/until.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
}
const DEPLOY = path.join(ROOT, 'deploy')
const docs = (file: string): any[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()) // eslint-disable-line @typescript-eslint/no-explicit-any
const grants = (rules: Rule[]) =>
  rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))))

/** Builds a kustomization (written in a temp dir beside a link to deploy/) with kubectl kustomize. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function build(kustomization: string): any[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-bitnami-overlay-'))
  try {
    symlinkSync(DEPLOY, path.join(dir, 'deploy'))
    mkdirSync(path.join(dir, 'overlay'))
    writeFileSync(path.join(dir, 'overlay', 'kustomization.yaml'), kustomization)
    const r = spawnSync('kubectl', ['kustomize', path.join(dir, 'overlay')], {encoding: 'utf8'})
    expect({stderr: r.stderr, status: r.status}).toEqual({stderr: '', status: 0})
    return parseAllDocuments(r.stdout).map((d) => d.toJS())
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

describe('deploy/bitnami', () => {
  tool('kubectl').it('is a component: on the base it adds its RBAC and runs the controller with --bitnami', () => {
    const base = build('resources: [../deploy]\n')
    const built = build('resources: [../deploy]\ncomponents: [../deploy/bitnami]\n')
    expect(built.length).toBe(base.length + 2)
    expect(built.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].args).toEqual(['controller', '--bitnami'])
    const binding = built.find((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'kseal-controller-bitnami')
    expect(binding.subjects).toEqual([{kind: 'ServiceAccount', name: 'kseal-controller', namespace: 'kseal-system'}])
    expect(built.some((o) => o.kind === 'CustomResourceDefinition' && o.metadata.name === 'sealedsecrets.bitnami.com')).toBe(false)
  })
})

describe('the overlays the migration guide (docs/migrating.md) shows', () => {
  const guide = readFileSync(path.join(ROOT, 'docs', 'migrating.md'), 'utf8')
  const overlay = (name: string) => {
    const m = new RegExp('```yaml\\n# overlays/' + name + '/kustomization\\.yaml\\n([\\s\\S]*?)```').exec(guide)
    expect(m).not.toBeNull()
    return m![1].replace(/\.\.\/\.\.\/deploy/g, '../deploy')
  }
  tool('kubectl').it('beside: the base and the component', () => {
    const built = build(overlay('beside'))
    expect(built.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].args).toContain('--bitnami')
  })
  tool('kubectl').it(
    "kube-system: the Service kubeseal looks for, in its namespace, and nothing that would cut off kube-system's pods",
    () => {
      const built = build(overlay('kube-system'))
      const svc = built.filter((o) => o.kind === 'Service')
      expect(svc.map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['kube-system/sealed-secrets-controller'])
      expect(svc[0].spec.ports[0].name).toBe('http') // kubeseal proxies to the Service's first port, by name
      expect(built.some((o) => o.kind === 'Namespace')).toBe(false)
      expect(built.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name)).toEqual(['kseal-controller'])
      for (const o of built)
        if (!['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind))
          expect(o.metadata.namespace).toBe('kube-system')
      expect(JSON.stringify(built)).not.toContain('kseal-system')
      expect(built.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].args).toEqual(['controller', '--bitnami'])
    },
  )
})

describe('deploy/rbac.yaml with deploy/bitnami/rbac.yaml', () => {
  const KEY_NS = 'kseal-system'
  const NS = 'interop-ns'
  let srv: K8sApiServer
  let rep: Replica
  let dir: string
  beforeAll(async () => {
    srv = await startK8sApiServer({namespaces: [NS, KEY_NS], resources: [BITNAMI_SEALED_DEFINITION]})
    dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-rbac-bitnami-'))
    await srv.writeKubeconfig(path.join(dir, 'kubeconfig'))
    rep = await startReplica({name: 'rbac-bitnami', kubeconfig: path.join(dir, 'kubeconfig'), keyNamespace: KEY_NS, extra: ['--bitnami']})
  })
  afterAll(async () => {
    if (rep) await stopReplica(rep)
    await srv?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('allows every request the controller makes for Bitnami SealedSecrets, and every grant the component adds is used', async () => {
    await until(async () => (await rep.get('/readyz')).status === 200 || undefined, 'ready')
    // The imported key, signed with the controller's trust root, put straight into the store (test-side
    // writes are not in the request log).
    const root = trustRootOf(srv.getObject('v1', 'Secret', KEY_NS, TRUST_SECRET)!)!
    const keyPem = readFileSync(path.join(SEALED_SECRETS, 'tls.key'), 'utf8')
    const certPem = readFileSync(path.join(SEALED_SECRETS, 'tls.crt'), 'utf8')
    const kid = rsaKid(crypto.createPublicKey(keyPem))
    srv.putObject(keySecret(KEY_NS, {kid, keyPem, certPem}, new Date('2026-01-01T00:00:00Z'), root, undefined, true) as KubeObject)
    srv.putObject(interopPair('strict').sealed)
    const moved = interopPair('strict').sealed
    moved.metadata.name = 'moved'
    srv.putObject(moved)
    const cond = (name: string) =>
      srv.getObject('bitnami.com/v1alpha1', 'SealedSecret', NS, name)?.status?.conditions?.find((c: Obj) => c.type === 'Synced')
    await until(() => cond('interop-strict')?.status === 'True', 'unsealed', 20_000)
    await until(() => cond('moved')?.reason === 'NoKey', 'NoKey', 20_000)
    // Deleted once synced: written again from the SealedSecret, read once more (its cached copy holds no ciphertexts).
    srv.deleteObject('v1', 'Secret', NS, 'interop-strict')
    await until(() => srv.getObject('v1', 'Secret', NS, 'interop-strict'), 'the Secret written again', 20_000)

    const rules = (file: string, kind: string) => docs(file).find((m) => m.kind === kind && m.metadata.name.startsWith('kseal-controller'))
    const cluster = new Set([
      ...grants(rules(path.join(DEPLOY, 'rbac.yaml'), 'ClusterRole').rules),
      ...grants(docs(path.join(DEPLOY, 'bitnami', 'rbac.yaml')).find((m) => m.kind === 'ClusterRole').rules),
    ])
    const role = new Set(grants(rules(path.join(DEPLOY, 'rbac.yaml'), 'Role').rules))
    const added = grants(docs(path.join(DEPLOY, 'bitnami', 'rbac.yaml')).find((m) => m.kind === 'ClusterRole').rules)
    const used = new Set<string>()
    for (const r of srv.requests.filter((q) => q.isResourceRequest)) {
      const key = `${r.apiGroup ?? ''}/${r.resource}${r.subresource ? `/${r.subresource}` : ''}:${r.verb}`
      used.add(key)
      const allowed = cluster.has(key) || (r.namespace === KEY_NS && role.has(key))
      expect({request: key, ns: r.namespace, allowed}).toEqual({request: key, ns: r.namespace, allowed: true})
    }
    for (const g of added) expect({grant: g, used: used.has(g)}).toEqual({grant: g, used: true})
  })
})
