/**
 * Deploy-time decryption through its real interfaces: `kseal decrypt` in a shell pipe
 * (kustomize build | kseal decrypt | kubectl apply -f -), as a helm post-renderer (the binary and
 * the wrapper for older helm), and the Argo CD config-management plugin's generate command.
 * The contract each time: manifests on stdin, only manifests on stdout, errors on stderr, a
 * non-zero exit and no output at all on any failure.
 */
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import {BIN, cleanEnv, kseal, OTHER_CERT, OTHER_KEY, ROOT, run, type RunResult, TEAM_CERT} from './support/cli.js'

const secret = (name: string, body: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: prod\n${body}`

/** A rendered stream as kustomize or helm prints it: Secrets among other kinds, a List, comments. */
const PLAIN = [
  [
    '# Source: app/templates/deployment.yaml',
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: web',
    'spec:',
    '  replicas: 2',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: web',
    '          image: "nginx:1.27"  # pinned',
    '          envFrom: [{secretRef: {name: db}}]',
    '',
  ].join('\n'),
  secret('db', 'type: Opaque\nstringData:\n  password: "s3cr3t: with colon"\n  enabled: "yes"\ndata:\n  token: aGVsbG8gd29ybGQ=\n'),
  'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: "on"\n  port: "8080"\n',
  [
    'apiVersion: v1',
    'kind: List',
    'items:',
    '  - apiVersion: v1',
    '    kind: Secret',
    '    metadata:',
    '      name: in-list',
    '      namespace: prod',
    '    stringData:',
    '      cert: |',
    '        -----BEGIN CERTIFICATE-----',
    '        MIIB',
    '        -----END CERTIFICATE-----',
    '  - apiVersion: v1',
    '    kind: Service',
    '    metadata:',
    '      name: web',
    '    spec:',
    '      ports: [{port: 80}]',
    '',
  ].join('\n'),
  secret('api', 'stringData:\n  key: "0123456789"\n'),
]
  .map((d) => '---\n' + d)
  .join('')

let dir: string
let encrypted: string
/** A directory for PATH with `kseal` (the built CLI) and the fakes a test needs. */
let bin: string

function script(file: string, body: string): string {
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, 0o755)
  return file
}

function sh(command: string, opts: {cwd?: string; env?: Record<string, string | undefined>; input?: string} = {}): Promise<RunResult> {
  return run('sh', ['-c', command], {
    cwd: opts.cwd ?? dir,
    env: cleanEnv({PATH: `${bin}:${process.env.PATH}`, ...opts.env}),
    input: opts.input,
  })
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-pipeline-'))
  bin = path.join(dir, 'bin')
  mkdirSync(bin)
  script(path.join(bin, 'kseal'), `exec "${process.execPath}" "${BIN}" "$@"`)
  // kustomize and kubectl stand-ins: build prints the directory's rendered.yaml, apply saves stdin.
  script(
    path.join(bin, 'kustomize'),
    '[ "$1 $2" = "build ." ] || exit 9\n[ -z "$FAIL_BUILD" ] || { echo "kustomize: accumulating resources: boom" >&2; exit 1; }\ncat rendered.yaml',
  )
  script(path.join(bin, 'kubectl'), `[ "$*" = "apply -f -" ] || exit 9\ncat > "${path.join(dir, 'applied.yaml')}"\necho "applied"`)
  const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  encrypted = r.stdout
  expect(encrypted.match(/kseal:v2:/g)).toHaveLength(5)
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

const KEYS = {KSEAL_KEYS: OTHER_KEY}
const withKey = {env: cleanEnv(KEYS)}

describe('kseal decrypt in a pipe', () => {
  it('decrypts every Secret of a multi-document stream and passes every other byte through', async () => {
    const r = await kseal(['decrypt'], {...withKey, input: encrypted})
    expect(r).toEqual({code: 0, stdout: PLAIN, stderr: ''})
    // Only manifests on stdout: every document parses, and they are the ones that went in.
    expect(parseAllDocuments(r.stdout).map((d) => (d.toJS() as {kind: string}).kind)).toEqual([
      'Deployment',
      'Secret',
      'ConfigMap',
      'List',
      'Secret',
    ])
  })

  it('kustomize build . | kseal decrypt | kubectl apply -f - applies the plaintext stream', async () => {
    writeFileSync(path.join(dir, 'rendered.yaml'), encrypted)
    const r = await sh('set -e; kustomize build . | kseal decrypt | kubectl apply -f -', {env: KEYS})
    expect(r).toEqual({code: 0, stdout: 'applied\n', stderr: ''})
    expect(readFileSync(path.join(dir, 'applied.yaml'), 'utf8')).toBe(PLAIN)
  })

  it('a Secret it cannot decrypt fails the run: exit 3, one line on stderr, nothing on stdout', async () => {
    const foreign = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: secret('foreign', 'stringData:\n  pw: never-shown\n')})
    const stream = encrypted + '---\n' + foreign.stdout + '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n'
    const r = await kseal(['decrypt'], {...withKey, input: stream})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(
      /^kseal: \(stdin\): document 6 \(Secret prod\/foreign\): no key for this Secret: it is encrypted for rsa:d5326737ee564566/,
    )
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).not.toContain('s3cr3t')
  })

  it('a tampered value or a malformed document after valid ones yields no partial output', async () => {
    const tampered = encrypted.replace(/(password: "kseal:v2:)(.)/, (_, a, c) => a + (c === 'A' ? 'B' : 'A'))
    const t = await kseal(['decrypt'], {...withKey, input: tampered})
    expect(t.code).toBe(3)
    expect(t.stdout).toBe('')
    expect(t.stderr).toMatch(/document 2 \(Secret prod\/db\): stringData\.password: cannot decrypt/)
    const broken = await kseal(['decrypt'], {...withKey, input: encrypted + '---\nkind: [unclosed\n'})
    expect(broken.code).toBe(2)
    expect(broken.stdout).toBe('')
    expect(broken.stderr).toMatch(/document 6: malformed YAML/)
  })

  it('in a pipeline a failure stops the deploy: kubectl gets nothing to apply, and pipefail sees exit 3', async () => {
    writeFileSync(path.join(dir, 'rendered.yaml'), encrypted)
    writeFileSync(path.join(dir, 'applied.yaml'), 'untouched')
    const r = await sh('kustomize build . | kseal decrypt | kubectl apply -f -', {env: {KSEAL_KEYS: undefined}})
    expect(readFileSync(path.join(dir, 'applied.yaml'), 'utf8')).toBe('')
    expect(r.stderr).toMatch(/no key for this Secret/)
    const strict = await sh(`bash -c 'set -o pipefail; kustomize build . | kseal decrypt | kubectl apply -f -'`, {
      env: {KSEAL_KEYS: undefined},
    })
    expect(strict.code).toBe(3)
  })

  it('an empty stream gives an empty stream', async () => {
    expect(await kseal(['decrypt'], {...withKey, input: ''})).toEqual({code: 0, stdout: '', stderr: ''})
  })
})

describe('helm post-renderer', () => {
  // helm runs the post-renderer with the rendered manifests on stdin and reads stdout; a non-zero
  // exit fails the install. helm ≥ 3.10: --post-renderer kseal --post-renderer-args decrypt.
  const rendered = () => encrypted.replace(/^---\n/gm, '---\n# Source: app/templates/x.yaml\n')

  it('kseal decrypt (helm ≥ 3.10: binary plus args) turns the rendered chart into plaintext manifests', async () => {
    const r = await sh('kseal decrypt', {env: KEYS, input: rendered()})
    expect(r).toEqual({code: 0, stdout: PLAIN.replace(/^---\n/gm, '---\n# Source: app/templates/x.yaml\n'), stderr: ''})
  })

  it('the wrapper script for older helm does the same, and fails the release when a Secret does not decrypt', async () => {
    const wrapper = script(path.join(dir, 'kseal-post-renderer'), 'exec kseal decrypt')
    const ok = await sh(wrapper, {env: KEYS, input: rendered()})
    expect(ok.code).toBe(0)
    expect(ok.stdout).toBe(PLAIN.replace(/^---\n/gm, '---\n# Source: app/templates/x.yaml\n'))
    const fail = await sh(wrapper, {input: rendered()})
    expect(fail.code).toBe(3)
    expect(fail.stdout).toBe('')
  })
})

describe('Argo CD config management plugin (deploy/argocd)', () => {
  const plugin = parse(readFileSync(path.join(ROOT, 'deploy/argocd/plugin.yaml'), 'utf8'))
  let app: string
  beforeAll(() => {
    app = path.join(dir, 'app')
    mkdirSync(app)
    writeFileSync(path.join(app, 'kustomization.yaml'), 'resources: [rendered.yaml]\n')
    writeFileSync(path.join(app, 'rendered.yaml'), encrypted) // what the stand-in kustomize builds
  })
  const generate = (env: Record<string, string | undefined>) =>
    sh([...plugin.spec.generate.command, ...plugin.spec.generate.args].map((a: string) => `'${a.replace(/'/g, `'\\''`)}'`).join(' '), {
      cwd: app,
      env,
    })

  it('is a sidecar ConfigManagementPlugin named kseal, discovered by a kustomization under any name kustomize reads', async () => {
    expect(plugin).toMatchObject({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'ConfigManagementPlugin',
      metadata: {name: 'kseal'},
      spec: {version: 'v1'},
    })
    expect(plugin.spec.generate.command).toEqual(['sh', '-c'])
    // Argo CD runs discover.find.command in the Application's directory: any output claims it.
    const [shell, flag, script] = plugin.spec.discover.find.command as string[]
    expect([shell, flag]).toEqual(['sh', '-c'])
    for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization', 'values.yaml', '']) {
      const d = mkdtempSync(path.join(dir, 'discover-'))
      if (name) writeFileSync(path.join(d, name), 'resources: []\n')
      const r = await run('sh', ['-c', script], {cwd: d})
      expect({name, code: r.code, claimed: r.stdout.trim()}).toEqual({
        name,
        code: 0,
        claimed: name.startsWith('kustomization') || name === 'Kustomization' ? name : '',
      })
    }
  })

  it('its generate command builds the source directory and decrypts it with the keys in KSEAL_KEYS', async () => {
    const r = await generate({KSEAL_KEYS: OTHER_KEY})
    expect(r).toEqual({code: 0, stdout: PLAIN, stderr: ''})
  })

  it('a failing build or a failing decrypt fails manifest generation with no output', async () => {
    const build = await generate({KSEAL_KEYS: OTHER_KEY, FAIL_BUILD: '1'})
    expect(build.code).not.toBe(0)
    expect(build.stdout).toBe('')
    expect(build.stderr).toContain('boom')
    const decrypt = await generate({})
    expect(decrypt.code).toBe(3)
    expect(decrypt.stdout).toBe('')
  })

  it('the repo-server patch runs the plugin config it ships and hands the keys over as KSEAL_KEYS', async () => {
    const patch = parse(readFileSync(path.join(ROOT, 'deploy/argocd/repo-server-patch.yaml'), 'utf8'))
    const component = parse(readFileSync(path.join(ROOT, 'deploy/argocd/kustomization.yaml'), 'utf8'))
    expect(component).toMatchObject({kind: 'Component', patches: [{path: 'repo-server-patch.yaml'}]})
    expect(component.configMapGenerator[0]).toMatchObject({
      name: 'kseal-cmp-plugin',
      files: ['plugin.yaml'],
      options: {disableNameSuffixHash: true},
    })
    const pod = patch.spec.template.spec
    const sidecar = pod.containers.find((c: {name: string}) => c.name === 'kseal')
    expect(sidecar.command).toEqual(['/var/run/argocd/argocd-cmp-server'])
    expect(sidecar.securityContext).toMatchObject({runAsNonRoot: true, runAsUser: 999})
    const mount = (c: {volumeMounts: {name: string; mountPath: string; subPath?: string}[]}, at: string) =>
      c.volumeMounts.find((m) => m.mountPath === at)
    expect(mount(sidecar, '/home/argocd/cmp-server/config/plugin.yaml')).toMatchObject({name: 'kseal-cmp-plugin', subPath: 'plugin.yaml'})
    expect(pod.volumes.find((v: {name: string}) => v.name === 'kseal-cmp-plugin').configMap.name).toBe('kseal-cmp-plugin')
    const keysDir = sidecar.env.find((e: {name: string}) => e.name === 'KSEAL_KEYS').value
    expect(mount(sidecar, keysDir)?.name).toBe('kseal-keys')

    // The init container's copy: a Secret file mounted group-readable is refused as a key, the
    // copy it makes (mode 0600) is accepted.
    const init = pod.initContainers[0]
    const secretDir = path.join(dir, 'kseal-secret')
    const copyDir = path.join(dir, 'kseal-keys')
    mkdirSync(secretDir)
    mkdirSync(copyDir)
    copyFileSync(OTHER_KEY, path.join(secretDir, 'kseal.key'))
    chmodSync(path.join(secretDir, 'kseal.key'), 0o440)
    const refused = await kseal(['decrypt'], {env: cleanEnv({KSEAL_KEYS: secretDir}), input: encrypted})
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/readable by others/)
    const cmd = init.args[0].replaceAll('/kseal-secret', secretDir).replaceAll('/kseal-keys', copyDir)
    expect((await sh(cmd)).code).toBe(0)
    const r = await kseal(['decrypt'], {env: cleanEnv({KSEAL_KEYS: copyDir}), input: encrypted})
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(PLAIN)
  })
})
