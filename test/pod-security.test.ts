/**
 * Every container kseal ships — the controller in deploy/ and the Argo CD plugin's sidecar and init
 * container in deploy/argocd/ — passes the restricted Pod Security Standard, checked rule by rule as
 * the PodSecurity admission controller does (baseline rules, then restricted's), and sets resource
 * requests and limits. The Argo CD patch is checked both as written and merged by kustomize into a
 * repo-server Deployment.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import {ROOT} from './support/cli.js'
import {tool} from './support/tools.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']
const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']

/**
 * What a pod spec does against the restricted profile; `only` limits the container checks to some
 * containers (for a patch that adds them to a pod it does not own). Empty when it passes.
 */
function restrictedViolations(pod: Obj, annotations: Obj = {}, only?: string[]): string[] {
  const out: string[] = []
  const podSc: Obj = pod.securityContext ?? {}
  const all: Obj[] = [...(pod.initContainers ?? []), ...(pod.containers ?? []), ...(pod.ephemeralContainers ?? [])]
  const containers = only ? all.filter((c) => only.includes(c.name)) : all
  if (only) expect(containers.map((c) => c.name).sort()).toEqual([...only].sort())
  // Baseline.
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[f]) out.push(`pod: ${f}`)
  if (podSc.windowsOptions?.hostProcess) out.push('pod: hostProcess')
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name')!
    if (!RESTRICTED_VOLUMES.includes(type)) out.push(`volume ${v.name}: ${type} (restricted allows ${RESTRICTED_VOLUMES.join(', ')})`)
  }
  for (const s of podSc.sysctls ?? []) if (!SAFE_SYSCTLS.includes(s.name)) out.push(`pod: sysctl ${s.name}`)
  const seLinux = (where: string, o?: Obj) => {
    if (!o) return
    if (!SELINUX_TYPES.includes(o.type ?? '')) out.push(`${where}: seLinuxOptions.type ${o.type}`)
    if (o.user || o.role) out.push(`${where}: seLinuxOptions user/role`)
  }
  seLinux('pod', podSc.seLinuxOptions)
  for (const [k, v] of Object.entries(annotations)) {
    if (k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== 'runtime/default' && !String(v).startsWith('localhost/'))
      out.push(`annotation ${k}: ${v}`)
  }
  if (podSc.appArmorProfile?.type === 'Unconfined') out.push('pod: appArmorProfile Unconfined')
  // Restricted, pod level.
  if (podSc.runAsUser === 0) out.push('pod: runAsUser 0')
  const seccompOk = (o?: Obj) => o?.type === 'RuntimeDefault' || o?.type === 'Localhost'
  for (const c of containers) {
    const sc: Obj = c.securityContext ?? {}
    const at = `container ${c.name}`
    if (sc.privileged) out.push(`${at}: privileged`)
    if (sc.windowsOptions?.hostProcess) out.push(`${at}: hostProcess`)
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${at}: hostPort ${p.hostPort}`)
    if (sc.procMount && sc.procMount !== 'Default') out.push(`${at}: procMount ${sc.procMount}`)
    if (sc.appArmorProfile?.type === 'Unconfined') out.push(`${at}: appArmorProfile Unconfined`)
    seLinux(at, sc.seLinuxOptions)
    if (sc.allowPrivilegeEscalation !== false) out.push(`${at}: allowPrivilegeEscalation must be false`)
    if (!(sc.runAsNonRoot === true || (podSc.runAsNonRoot === true && sc.runAsNonRoot !== false)))
      out.push(`${at}: runAsNonRoot must be true`)
    if (sc.runAsUser === 0) out.push(`${at}: runAsUser 0`)
    if (sc.seccompProfile?.type === 'Unconfined' || podSc.seccompProfile?.type === 'Unconfined') out.push(`${at}: seccomp Unconfined`)
    if (!(seccompOk(sc.seccompProfile) || (sc.seccompProfile === undefined && seccompOk(podSc.seccompProfile))))
      out.push(`${at}: seccompProfile must be RuntimeDefault or Localhost`)
    const caps: Obj = sc.capabilities ?? {}
    if (!(caps.drop ?? []).includes('ALL')) out.push(`${at}: capabilities must drop ALL`)
    for (const cap of caps.add ?? []) {
      if (cap !== 'NET_BIND_SERVICE')
        out.push(`${at}: adds capability ${cap}${BASELINE_CAPABILITIES.includes(cap) ? ' (baseline only)' : ''}`)
    }
  }
  return out
}

/** Containers without cpu and memory requests and limits. */
function unbounded(pod: Obj, only?: string[]): string[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])]
    .filter((c) => !only || only.includes(c.name))
    .flatMap((c) =>
      ['requests', 'limits'].flatMap((k) =>
        ['cpu', 'memory'].filter((r) => c.resources?.[k]?.[r] === undefined).map((r) => `${c.name}: ${k}.${r}`),
      ),
    )
}

const docs = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean)
const podsIn = (objs: Obj[]) =>
  objs
    .filter((o) => o.spec?.template?.spec)
    .map((o) => ({name: `${o.kind}/${o.metadata.name}`, pod: o.spec.template.spec, annotations: o.spec.template.metadata?.annotations}))
const ARGOCD_CONTAINERS = ['kseal-keys', 'kseal']

describe('the restricted Pod Security Standard', () => {
  it('holds for every workload in deploy/', () => {
    const objs = readdirSync(path.join(ROOT, 'deploy'))
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => docs(readFileSync(path.join(ROOT, 'deploy', f), 'utf8')))
    const pods = podsIn(objs)
    expect(pods.map((p) => p.name)).toEqual(['Deployment/kseal-controller'])
    for (const p of pods)
      expect({pod: p.name, violations: restrictedViolations(p.pod, p.annotations), unbounded: unbounded(p.pod)}).toEqual({
        pod: p.name,
        violations: [],
        unbounded: [],
      })
  })

  it('holds for the containers deploy/argocd adds to the repo-server', () => {
    const [patch] = docs(readFileSync(path.join(ROOT, 'deploy', 'argocd', 'repo-server-patch.yaml'), 'utf8'))
    const pod = patch.spec.template.spec
    expect(restrictedViolations(pod, {}, ARGOCD_CONTAINERS)).toEqual([])
    expect(unbounded(pod, ARGOCD_CONTAINERS)).toEqual([])
  })

  it('catches what it must: each rule fails on a pod that breaks it', () => {
    const ok = {
      securityContext: {runAsNonRoot: true},
      containers: [
        {
          name: 'c',
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: ['ALL']}, seccompProfile: {type: 'RuntimeDefault'}},
        },
      ],
    }
    expect(restrictedViolations(ok)).toEqual([])
    const broken = (f: (p: Obj) => void) => {
      const p = structuredClone(ok) as Obj
      f(p)
      return restrictedViolations(p)
    }
    expect(broken((p) => delete p.containers[0].securityContext.seccompProfile)).toEqual([
      'container c: seccompProfile must be RuntimeDefault or Localhost',
    ])
    expect(broken((p) => (p.containers[0].securityContext.allowPrivilegeEscalation = true))).toEqual([
      'container c: allowPrivilegeEscalation must be false',
    ])
    expect(broken((p) => (p.containers[0].securityContext.capabilities = {drop: ['ALL'], add: ['SYS_ADMIN']}))).toEqual([
      'container c: adds capability SYS_ADMIN',
    ])
    expect(broken((p) => delete p.securityContext.runAsNonRoot)).toEqual(['container c: runAsNonRoot must be true'])
    expect(broken((p) => (p.volumes = [{name: 'h', hostPath: {path: '/'}}]))).toEqual([
      'volume h: hostPath (restricted allows configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret)',
    ])
    expect(broken((p) => (p.hostNetwork = true))).toEqual(['pod: hostNetwork'])
    expect(broken((p) => (p.containers[0].securityContext.privileged = true))).toEqual(['container c: privileged'])
  })

  tool('kubectl').it('holds after kubectl kustomize merges the Argo CD component into a repo-server Deployment', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-pss-'))
    try {
      // A stand-in for Argo CD's argocd-repo-server (the real install.yaml is fetched from the network).
      writeFileSync(
        path.join(dir, 'repo-server.yaml'),
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata: {name: argocd-repo-server}',
          'spec:',
          '  selector: {matchLabels: {app: repo}}',
          '  template:',
          '    metadata: {labels: {app: repo}}',
          '    spec:',
          '      containers:',
          '        - name: argocd-repo-server',
          '          image: quay.io/argoproj/argocd:v2.13.0',
          '      volumes:',
          '        - {name: var-files, emptyDir: {}}',
          '        - {name: plugins, emptyDir: {}}',
          '',
        ].join('\n'),
      )
      writeFileSync(
        path.join(dir, 'kustomization.yaml'),
        `namespace: argocd\nresources: [repo-server.yaml]\ncomponents: [${path.relative(dir, path.join(ROOT, 'deploy', 'argocd'))}]\n`,
      )
      const r = spawnSync('kubectl', ['kustomize', '--load-restrictor', 'LoadRestrictionsNone', dir], {encoding: 'utf8'})
      expect({status: r.status, stderr: r.stderr}).toEqual({status: 0, stderr: ''})
      const objs = docs(r.stdout)
      expect(objs.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual([
        'ConfigMap/argocd/kseal-cmp-plugin',
        'Deployment/argocd/argocd-repo-server',
      ])
      const pod = objs.find((o) => o.kind === 'Deployment')!.spec.template.spec
      expect(pod.containers.map((c: Obj) => c.name).sort()).toEqual(['argocd-repo-server', 'kseal'])
      expect(restrictedViolations(pod, {}, ARGOCD_CONTAINERS)).toEqual([])
      expect(unbounded(pod, ARGOCD_CONTAINERS)).toEqual([])
      expect(pod.volumes.map((v: Obj) => v.name).sort()).toEqual([
        'kseal-cmp-plugin',
        'kseal-keys',
        'kseal-secret',
        'kseal-tmp',
        'plugins',
        'var-files',
      ])
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
