/**
 * kseal as its images run it. The Deployment runs the controller as uid 65532 (the Argo CD sidecar
 * as 999): a numeric uid with no passwd entry, no HOME or SHELL unless the manifest sets them, a
 * read-only root filesystem with only /tmp writable, and no capabilities. bubblewrap builds exactly
 * that sandbox around the built CLI (a user namespace, so it needs no root), and the CLI, the KRM
 * function and a controller that reaches /readyz against the test API server all run inside it.
 */
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {DEFAULT_SHELL, NO_HOME, provideLoginEnv} from '../src/cli/login-env.js'
import {BIN, ROOT, run, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {type Replica, startReplica, stopReplica} from './support/controller.js'
import {until} from './support/until.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import {tool} from './support/tools.js'

const UID = 65532
const SECRET = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: s3cr3t # comment\n'

describe('the login environment oclif needs (provideLoginEnv)', () => {
  const noEntry = () => {
    throw Object.assign(new Error('uv_os_get_passwd returned ENOENT'), {code: 'ENOENT'})
  }

  it('with no passwd entry and no HOME or SHELL: HOME=/nonexistent, SHELL=/bin/sh', () => {
    const env: NodeJS.ProcessEnv = {PATH: '/bin'}
    provideLoginEnv(env, noEntry)
    expect(env).toEqual({PATH: '/bin', HOME: NO_HOME, SHELL: DEFAULT_SHELL})
  })

  it('keeps HOME and SHELL that are set, and does not look the user up for them', () => {
    const env: NodeJS.ProcessEnv = {HOME: '/tmp', SHELL: ''}
    provideLoginEnv(env, () => {
      throw new Error('looked up')
    })
    expect(env).toEqual({HOME: '/tmp', SHELL: ''})
  })

  it("an empty HOME is no home: the passwd entry's, whose shell oclif can then look up itself", () => {
    const env: NodeJS.ProcessEnv = {HOME: ''}
    provideLoginEnv(env, () => ({homedir: '/home/ci'}))
    expect(env).toEqual({HOME: '/home/ci'})
  })
})

const bwrap = tool('bwrap')

bwrap.describe(
  'as the image runs it (bubblewrap: uid 65532 without a passwd entry, no HOME/SHELL, read-only /, writable /tmp, no capabilities)',
  () => {
    let tmp: string
    let srv: K8sApiServer | undefined
    let replica: Replica | undefined

    /** The sandbox: everything of the host read-only, `tmp` as its only writable /tmp, an empty environment. */
    const sandbox = (env: Record<string, string> = {}) => [
      'bwrap',
      '--unshare-user',
      '--uid',
      String(UID),
      '--gid',
      String(UID),
      '--cap-drop',
      'ALL',
      '--ro-bind',
      '/',
      '/',
      '--dev',
      '/dev',
      '--proc',
      '/proc',
      '--bind',
      tmp,
      '/tmp',
      '--die-with-parent',
      '--new-session',
      '--clearenv',
      '--setenv',
      'PATH',
      '/usr/local/bin:/usr/bin:/bin',
      ...Object.entries(env).flatMap(([k, v]) => ['--setenv', k, v]),
      '--chdir',
      '/tmp',
    ]
    const inside = (args: string[], input?: string, env?: Record<string, string>) => {
      const [cmd, ...rest] = [...sandbox(env), ...args]
      return run(cmd, rest, {input})
    }
    const ksealInside = (args: string[], input?: string, env?: Record<string, string>) =>
      inside([process.execPath, BIN, ...args], input, env)

    beforeAll(() => {
      tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-runtime-'))
      copyFileSync(TEAM_CERT, path.join(tmp, 'team.crt')) // the recipient the tests encrypt to, inside the sandbox
    })
    afterAll(async () => {
      if (replica) await stopReplica(replica, 'SIGKILL')
      await srv?.close()
      rmSync(tmp, {recursive: true, force: true})
    })

    it('the sandbox is what the Deployment gives: that uid, no passwd entry, no HOME or SHELL, / read-only, /tmp writable', async () => {
      const r = await inside([
        'sh',
        '-c',
        'id -u; getent passwd "$(id -u)" || echo no-entry; echo "${HOME-unset} ${SHELL-unset}"; touch /kseal-probe 2>/dev/null || echo ro; touch /tmp/probe && echo rw; grep CapEff /proc/self/status',
      ])
      expect(r.stdout.split('\n').slice(0, 5)).toEqual([String(UID), 'no-entry', 'unset unset', 'ro', 'rw'])
      expect(r.stdout).toMatch(/CapEff:\s+0+\n/)
    })

    it("--version, --help and a command's --help run", async () => {
      const version = await ksealInside(['--version'])
      expect(version).toMatchObject({code: 0, stderr: ''})
      expect(version.stdout).toMatch(/^kseal\/0\.1\.0 /)
      for (const args of [['--help'], ['encrypt', '--help'], ['controller', '--help']]) {
        const r = await ksealInside(args)
        expect({args, code: r.code, stderr: r.stderr}).toEqual({args, code: 0, stderr: ''})
        expect(r.stdout).toMatch(/USAGE|VERSION/)
      }
    })

    it('encrypt -i a file in /tmp, then decrypt it with a key, byte for byte', async () => {
      writeFileSync(path.join(tmp, 'db.yaml'), SECRET)
      const enc = await ksealInside(['encrypt', '-i', '-r', 'rsa:team.crt', 'db.yaml'])
      expect(enc).toMatchObject({code: 0, stderr: ''})
      const encrypted = readFileSync(path.join(tmp, 'db.yaml'), 'utf8')
      expect(encrypted).toMatch(/password: kseal:v2:\S+ # comment\n/)
      const dec = await ksealInside(['decrypt', '-k', `rsa:${TEAM_KEY}`, 'db.yaml'])
      expect(dec).toEqual({code: 0, stdout: SECRET, stderr: ''})
      // No key given and no home to look in: a clear error, not a crash.
      const none = await ksealInside(['decrypt', 'db.yaml'])
      expect(none.code).toBe(3)
      expect(none.stderr).toMatch(/^kseal: db\.yaml: document 1 \(Secret prod\/db\): no key for this Secret/)
    })

    it('the KRM function (kseal-krm, as kustomize execs it) decrypts a ResourceList', async () => {
      const enc = await ksealInside(['encrypt', '-r', 'rsa:team.crt'], SECRET)
      expect(enc).toMatchObject({code: 0, stderr: ''})
      const item = enc.stdout
        .trimEnd()
        .split('\n')
        .map((l, i) => (i ? '  ' : '- ') + l)
        .join('\n')
      const list = `apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n${item}\n`
      const r = await inside([process.execPath, path.join(ROOT, 'bin', 'kseal-krm.js')], list, {KSEAL_KEYS: TEAM_KEY})
      expect(r).toMatchObject({code: 0, stderr: ''})
      expect(r.stdout).toContain('  stringData:\n    password: s3cr3t # comment\n')
    })

    it('kseal controller starts, makes its key and becomes ready (/readyz) against the API server', async () => {
      srv = await startK8sApiServer({namespaces: ['default', 'kseal-system']})
      const kubeconfig = path.join(tmp, 'kubeconfig')
      await srv.writeKubeconfig(kubeconfig)
      replica = await startReplica({name: 'sandboxed', kubeconfig: '/tmp/kubeconfig', keyNamespace: 'kseal-system', wrap: sandbox()})
      await until(async () => (await replica!.get('/readyz')).status === 200, 'the sandboxed controller to be ready', 30_000)
      expect(
        srv.listObjects('v1', 'Secret', 'kseal-system').filter((s) => s.metadata.labels?.['kseal.dev/sealing-key'] === 'active'),
      ).toHaveLength(1)
      expect(replica.lines.filter((l) => /"level":"error"/.test(l))).toEqual([])
    }, 60_000)
  },
)
