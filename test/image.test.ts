/**
 * The container image, built without a daemon and run as deploy/deployment.yaml runs it.
 *
 * No base image can be pulled here, so the image's root filesystem is assembled by following the
 * Dockerfile's final stage, instruction by instruction: its base (node:20-bookworm-slim) stands in
 * as this machine's node 20 binary and the shared libraries it needs; the build stage's outputs are
 * this checkout's build (dist/, oclif.manifest.json) and its node_modules pruned by the Dockerfile's
 * own `npm prune` command; COPY, WORKDIR, ENV, USER, ENTRYPOINT, CMD and EXPOSE are applied as
 * written. An instruction the assembly does not know fails the test, so the Dockerfile stays the
 * source of truth. umoci packs the result into an OCI image layout with the Dockerfile's image
 * configuration and unpacks it into a runtime bundle; runc runs it with the Deployment's container
 * securityContext: uid/gid 65532 (no passwd entry in the image at all), read-only root filesystem,
 * /tmp as an emptyDir, no capabilities, no privilege escalation, a seccomp filter.
 */
import {type ChildProcess, execFileSync, spawn, spawnSync} from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect} from '@jest/globals'
import {parse} from 'yaml'
import {ROOT, run, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {until} from './support/until.js'
import {readDockerfile, stageChain} from './support/dockerfile.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import {tool} from './support/tools.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Syscalls that the container runtimes' RuntimeDefault seccomp profile does not allow and that a
 * process could use against its host (kernel modules, namespaces, mounts, tracing, keyrings, clock,
 * reboot). runc applies this deny list; RuntimeDefault proper is an allow list of the rest.
 */
const RUNTIME_DEFAULT_DENIED = [
  'acct',
  'add_key',
  'bpf',
  'clock_adjtime',
  'clock_settime',
  'create_module',
  'delete_module',
  'finit_module',
  'fsconfig',
  'fsmount',
  'fsopen',
  'fspick',
  'get_kernel_syms',
  'init_module',
  'ioperm',
  'iopl',
  'kcmp',
  'kexec_file_load',
  'kexec_load',
  'keyctl',
  'lookup_dcookie',
  'mount',
  'move_mount',
  'name_to_handle_at',
  'nfsservctl',
  'open_by_handle_at',
  'open_tree',
  'perf_event_open',
  'pivot_root',
  'process_vm_readv',
  'process_vm_writev',
  'ptrace',
  'query_module',
  'quotactl',
  'reboot',
  'request_key',
  'setns',
  'settimeofday',
  'swapoff',
  'swapon',
  'sysfs',
  '_sysctl',
  'umount2',
  'unshare',
  'uselib',
  'userfaultfd',
  'ustat',
]

let work: string
let image: string
let imageConfig: Obj
let bundle: string
let srv: K8sApiServer | undefined
let controller: ChildProcess | undefined
const containers: string[] = []

/** JSON array form of ENTRYPOINT/CMD. */
const execForm = (args: string) => JSON.parse(args) as string[]

/** The build stage's outputs (/src/... in the Dockerfile): this checkout, built, with node_modules pruned as the Dockerfile prunes them. */
function buildOutputs(stages: ReturnType<typeof readDockerfile>): (p: string) => string {
  const build = stages.find((s) => s.name === 'build')!
  const runs = build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)
  expect(runs[0]).toMatch(/^npm ci /)
  const [buildCmd, prune] = runs[1].split(' && ')
  expect(buildCmd).toBe('node scripts/build.mjs')
  expect(prune).toMatch(/^npm prune --omit=dev /)
  expect(runs).toHaveLength(2)
  // The checkout's build is what `npm test` just made; node_modules is copied (hard links) and pruned.
  expect(existsSync(path.join(ROOT, 'dist', 'cli', 'run.js')) && existsSync(path.join(ROOT, 'oclif.manifest.json'))).toBe(true)
  const src = path.join(work, 'src')
  mkdirSync(src)
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(path.join(ROOT, f), path.join(src, f))
  execFileSync('cp', ['-al', path.join(ROOT, 'node_modules'), path.join(src, 'node_modules')])
  execFileSync('sh', ['-c', `${prune} --offline`], {cwd: src, stdio: 'ignore'})
  expect(existsSync(path.join(src, 'node_modules', 'typescript'))).toBe(false)
  expect(existsSync(path.join(src, 'node_modules', 'yaml'))).toBe(true)
  return (p) => {
    const rel = path.relative('/src', p)
    return rel === 'node_modules' || rel.startsWith('node_modules/') || rel.startsWith('package')
      ? path.join(src, rel)
      : path.join(ROOT, rel)
  }
}

/** node:20-bookworm-slim, as far as kseal needs it: node 20 at /usr/local/bin/node and its shared libraries. */
function baseImage(rootfs: string, base: string): void {
  expect(base).toBe('node:20-bookworm-slim')
  expect(process.versions.node.split('.')[0]).toBe('20')
  const libs = execFileSync('ldd', [process.execPath], {encoding: 'utf8'}).match(/\/\S+/g) ?? []
  for (const lib of libs) {
    mkdirSync(path.join(rootfs, path.dirname(lib)), {recursive: true})
    copyFileSync(lib, path.join(rootfs, lib))
  }
  mkdirSync(path.join(rootfs, 'usr/local/bin'), {recursive: true})
  copyFileSync(process.execPath, path.join(rootfs, 'usr/local/bin/node'))
  chmodSync(path.join(rootfs, 'usr/local/bin/node'), 0o755)
  for (const d of ['tmp', 'proc', 'dev', 'sys', 'etc']) mkdirSync(path.join(rootfs, d), {recursive: true})
  chmodSync(path.join(rootfs, 'tmp'), 0o1777)
  expect(existsSync(path.join(rootfs, 'etc', 'passwd'))).toBe(false)
}

/** The final stage, assembled into `rootfs`; returns the image configuration it sets. */
function assemble(rootfs: string): Obj {
  const stages = readDockerfile()
  const {base, instructions} = stageChain(stages, stages.at(-1)!)
  const fromBuild = buildOutputs(stages)
  baseImage(rootfs, base)
  const config: Obj = {env: [] as string[], workdir: '/', ports: [] as string[]}
  for (const i of instructions) {
    switch (i.op) {
      case 'RUN': {
        // The slim base's npm and corepack are removed; the stand-in has none to remove.
        const m = /^rm -rf (.+)$/.exec(i.args)
        expect({
          run: i.args,
          removesOnlyNpm:
            Boolean(m) &&
            m![1].split(' ').every((p) => /^\/usr\/local\/(lib\/node_modules\/(npm|corepack)|bin\/(npm|npx|corepack))$/.test(p)),
        }).toEqual({run: i.args, removesOnlyNpm: true})
        for (const p of m![1].split(' ')) rmSync(path.join(rootfs, p), {recursive: true, force: true})
        break
      }
      case 'ENV':
        for (const [, k, v] of i.args.matchAll(/(\w+)=(\S+)/g)) config.env.push(`${k}=${v}`)
        break
      case 'WORKDIR':
        config.workdir = path.posix.resolve(config.workdir, i.args)
        mkdirSync(path.join(rootfs, config.workdir), {recursive: true})
        break
      case 'COPY': {
        const m = /^--from=build (.+) (\S+)$/.exec(i.args)
        expect({copy: i.args, fromBuild: Boolean(m)}).toEqual({copy: i.args, fromBuild: true})
        const sources = m![1].split(' ')
        const dest = path.posix.resolve(config.workdir, m![2])
        for (const s of sources) {
          const to = m![2].endsWith('/') ? path.join(rootfs, dest, path.basename(s)) : path.join(rootfs, dest)
          cpSync(fromBuild(s), to, {recursive: true, verbatimSymlinks: true})
        }
        break
      }
      case 'USER':
        config.user = i.args
        break
      case 'EXPOSE':
        config.ports.push(`${i.args}/tcp`)
        break
      case 'ENTRYPOINT':
        config.entrypoint = execForm(i.args)
        break
      case 'CMD':
        config.cmd = execForm(i.args)
        break
      default:
        throw new Error(`the image assembly does not know the Dockerfile instruction ${i.line}`)
    }
  }
  return config
}

/** The image's configuration blob, read from the OCI layout. */
function readImageConfig(layout: string): Obj {
  const blob = (digest: string) => JSON.parse(readFileSync(path.join(layout, 'blobs', ...digest.split(':')), 'utf8'))
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8'))
  const manifest = blob(index.manifests.find((m: Obj) => m.annotations?.['org.opencontainers.image.ref.name'] === 'kseal').digest)
  return blob(manifest.config.digest)
}

/** The Deployment's controller container. */
function deploymentContainer(): Obj {
  const d = parse(readFileSync(path.join(ROOT, 'deploy', 'deployment.yaml'), 'utf8'))
  return d.spec.template.spec.containers[0]
}

/**
 * A runtime bundle for one run: the image's runtime configuration (from umoci) with the Deployment's
 * securityContext and volumes applied, `args` after the entrypoint, and the host's network (the
 * test API server listens on the host's loopback).
 */
function runtimeBundle(name: string, args: string[], env: Record<string, string> = {}, binds: [string, string][] = []): string {
  const spec = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8'))
  const c = deploymentContainer()
  const sc = c.securityContext
  expect(sc.capabilities.drop).toEqual(['ALL'])
  expect(sc.seccompProfile.type).toBe('RuntimeDefault')
  spec.root = {path: path.join(bundle, 'rootfs'), readonly: sc.readOnlyRootFilesystem === true}
  spec.process.terminal = false
  spec.process.user = {uid: sc.runAsUser, gid: sc.runAsGroup}
  spec.process.noNewPrivileges = sc.allowPrivilegeEscalation === false
  spec.process.capabilities = {bounding: [], effective: [], inheritable: [], permitted: [], ambient: []}
  spec.process.args = [...imageConfig.config.Entrypoint, ...args]
  // The image's env (and node:20's PATH), then the Deployment's: values as written, the downward
  // API's as the kubelet fills them.
  const vars = new Map<string, string>([['PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']])
  for (const e of imageConfig.config.Env as string[]) vars.set(e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1))
  const downward: Record<string, string> = {'metadata.name': 'kseal-controller-0', 'metadata.namespace': 'kseal-system'}
  for (const e of c.env as Obj[]) vars.set(e.name, e.value ?? downward[e.valueFrom.fieldRef.fieldPath])
  for (const [k, v] of Object.entries(env)) vars.set(k, v)
  spec.process.env = [...vars].map(([k, v]) => `${k}=${v}`)
  // Each emptyDir the Deployment mounts is an empty, writable tmpfs.
  const volumes = parse(readFileSync(path.join(ROOT, 'deploy', 'deployment.yaml'), 'utf8')).spec.template.spec.volumes as Obj[]
  for (const m of c.volumeMounts) {
    expect(volumes.find((v) => v.name === m.name)?.emptyDir).toBeDefined()
    spec.mounts.push({destination: m.mountPath, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=64m']})
  }
  for (const [from, to] of binds) spec.mounts.push({destination: to, type: 'bind', source: from, options: ['rbind', 'ro']})
  spec.linux.namespaces = spec.linux.namespaces.filter((n: Obj) => n.type !== 'network')
  spec.linux.seccomp = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [{names: RUNTIME_DEFAULT_DENIED, action: 'SCMP_ACT_ERRNO'}],
  }
  const dir = path.join(work, `run-${name}`)
  mkdirSync(dir)
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2))
  return dir
}

/** runc runs a bundle to completion. */
async function runc(name: string, args: string[], opts: {input?: string; env?: Record<string, string>; binds?: [string, string][]} = {}) {
  const id = `kseal-test-${name}-${process.pid}`
  containers.push(id)
  return run('runc', ['run', '--bundle', runtimeBundle(name, args, opts.env, opts.binds), id], {
    input: opts.input,
    env: {PATH: process.env.PATH},
    timeoutMs: 60_000,
  })
}

const umoci = tool('umoci', {asRoot: true})
const runcTool = tool('runc', {asRoot: true})

umoci.describe("the kseal image, built without a daemon (umoci) from the Dockerfile's steps", () => {
  beforeAll(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'kseal-image-'))
    const rootfs = path.join(work, 'rootfs')
    mkdirSync(rootfs)
    const config = assemble(rootfs)
    image = path.join(work, 'layout')
    const umociRun = (...args: string[]) => execFileSync('umoci', args, {cwd: work, stdio: ['ignore', 'ignore', 'pipe']})
    umociRun('init', '--layout', image)
    umociRun('new', '--image', `${image}:kseal`)
    umociRun('insert', '--image', `${image}:kseal`, rootfs, '/')
    umociRun(
      'config',
      '--image',
      `${image}:kseal`,
      '--config.user',
      config.user,
      '--config.workingdir',
      config.workdir,
      ...config.entrypoint.flatMap((a: string) => ['--config.entrypoint', a]),
      ...config.cmd.flatMap((a: string) => ['--config.cmd', a]),
      ...config.env.flatMap((e: string) => ['--config.env', e]),
      ...config.ports.flatMap((p: string) => ['--config.exposedports', p]),
    )
    imageConfig = readImageConfig(image)
    bundle = path.join(work, 'bundle')
    umociRun('unpack', '--image', `${image}:kseal`, bundle)
  }, 180_000)

  afterAll(async () => {
    controller?.kill('SIGKILL')
    for (const id of containers) spawnSync('runc', ['delete', '--force', id], {stdio: 'ignore'})
    await srv?.close()
    if (work) rmSync(work, {recursive: true, force: true})
  })

  umoci.it("has the Dockerfile's configuration: user 65532, the kseal entrypoint, its env, /app, port 8080", () => {
    expect(imageConfig.config).toMatchObject({
      User: '65532:65532',
      Entrypoint: ['node', '/app/bin/run.js'],
      Cmd: ['--help'],
      WorkingDir: '/app',
      ExposedPorts: {'8080/tcp': {}},
    })
    expect(imageConfig.config.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'HOME=/tmp']))
    const rootfs = path.join(bundle, 'rootfs')
    expect(readdirSync(path.join(rootfs, 'app')).sort()).toEqual(['bin', 'dist', 'node_modules', 'oclif.manifest.json', 'package.json'])
    expect(existsSync(path.join(rootfs, 'app', 'node_modules', 'jest'))).toBe(false)
    expect(existsSync(path.join(rootfs, 'usr', 'local', 'bin', 'npm'))).toBe(false)
  })

  runcTool.it(
    "runs under runc as the Deployment's securityContext says: uid 65532 without a passwd entry, read-only root, no capabilities, seccomp",
    async () => {
      const probe = [
        'const fs = require("fs"), os = require("os")',
        'const status = fs.readFileSync("/proc/self/status", "utf8")',
        'const field = (f) => new RegExp(`^${f}:\\\\s*(.*)$`, "m").exec(status)[1].trim()',
        'let passwd = "entry"; try { os.userInfo() } catch (e) { passwd = e.info?.code ?? e.code }',
        'let root = "writable"; try { fs.writeFileSync("/probe", "x") } catch (e) { root = e.code }',
        'fs.writeFileSync("/tmp/probe", "x")',
        'console.log(JSON.stringify({uid: process.getuid(), gid: process.getgid(), passwd, root, ' +
          'capEff: field("CapEff"), noNewPrivs: field("NoNewPrivs"), seccomp: field("Seccomp"), ' +
          'home: process.env.HOME, shell: process.env.SHELL ?? null}))',
      ].join('; ')
      // umoci made the runtime configuration from the image's: entrypoint and cmd.
      expect(JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')).process.args).toEqual(['node', '/app/bin/run.js', '--help'])
      const r = await runc('version', ['--version'])
      expect({code: r.code, stderr: r.stderr}).toEqual({code: 0, stderr: ''})
      expect(r.stdout).toMatch(/^kseal\/0\.1\.0 linux-x64 node-v20\./)
      // The same container with node itself in place of the entrypoint's script, to look around.
      const id = `kseal-test-node-${process.pid}`
      containers.push(id)
      const dir = runtimeBundle('node', [])
      const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'))
      cfg.process.args = ['node', '-e', probe]
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg))
      const p = await run('runc', ['run', '--bundle', dir, id], {env: {PATH: process.env.PATH}})
      expect(p).toMatchObject({code: 0, stderr: ''})
      expect(JSON.parse(p.stdout)).toEqual({
        uid: 65532,
        gid: 65532,
        passwd: 'ENOENT',
        root: 'EROFS',
        capEff: '0000000000000000',
        noNewPrivs: '1',
        seccomp: '2',
        home: '/tmp',
        shell: null,
      })
    },
  )

  runcTool.it('encrypts and decrypts (stdin to stdout) in the container', async () => {
    const secret = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: s3cr3t\n'
    const keys = path.join(work, 'keys')
    mkdirSync(keys)
    copyFileSync(TEAM_CERT, path.join(keys, 'team.crt'))
    copyFileSync(TEAM_KEY, path.join(keys, 'team.key'))
    // Kubernetes mounts a Secret volume's files owned by the pod's fsGroup; here, by the container's uid.
    execFileSync('chown', ['-R', '65532:65532', keys])
    chmodSync(path.join(keys, 'team.key'), 0o600)
    const enc = await runc('encrypt', ['encrypt', '-r', 'rsa:/keys/team.crt'], {input: secret, binds: [[keys, '/keys']]})
    expect({code: enc.code, stderr: enc.stderr}).toEqual({code: 0, stderr: ''})
    expect(enc.stdout).toMatch(/password: kseal:v2:/)
    const dec = await runc('decrypt', ['decrypt'], {input: enc.stdout, env: {KSEAL_KEYS: '/keys/team.key'}, binds: [[keys, '/keys']]})
    expect(dec).toEqual({code: 0, stdout: secret, stderr: ''})
  })

  runcTool.it(
    "kseal controller (the Deployment's args) starts in the container and becomes ready against the API server",
    async () => {
      srv = await startK8sApiServer({namespaces: ['default', 'kseal-system']})
      const kube = path.join(work, 'kube')
      mkdirSync(kube)
      await srv.writeKubeconfig(path.join(kube, 'config'))
      execFileSync('chown', ['-R', '65532:65532', kube])
      const args = [...deploymentContainer().args, '--kubeconfig', '/kube/config', '--listen', '127.0.0.1:0', '--key-bits', '2048']
      expect(args[0]).toBe('controller')
      const id = `kseal-test-controller-${process.pid}`
      containers.push(id)
      controller = spawn('runc', ['run', '--bundle', runtimeBundle('controller', args, {}, [[kube, '/kube']]), id], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let log = ''
      controller.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
      controller.stdout!.resume()
      const port = await until(
        () => Number(/"msg":"serving HTTP","address":"[^"]*:(\d+)"/.exec(log)?.[1]) || (controller!.exitCode !== null && -1),
        'the controller to listen',
        30_000,
      )
      expect({port: port > 0, log: port > 0 ? '' : log}).toEqual({port: true, log: ''})
      await until(
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
        'the containerized controller to be ready',
        30_000,
      )
      // It made its key in its namespace (POD_NAMESPACE from the Deployment's downward API).
      expect(
        srv.listObjects('v1', 'Secret', 'kseal-system').filter((s) => s.metadata.labels?.['kseal.dev/sealing-key'] === 'active'),
      ).toHaveLength(1)
      expect(log).not.toMatch(/"level":"error"/)
    },
    60_000,
  )
})
