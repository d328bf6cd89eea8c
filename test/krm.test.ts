/**
 * `kseal krm` (and the `kseal-krm` shim kustomize's exec.path points at) against the KRM
 * functions contract: a ResourceList on stdin, a ResourceList on stdout, options from
 * functionConfig, failures as `results` with a non-zero exit and no decrypted item.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {cleanEnv, kseal, OTHER_CERT, OTHER_KEY, ROOT, run, type RunResult, TEAM_CERT} from './support/cli.js'
import {tool} from './support/tools.js'

/** A ResourceList as kustomize hands it to a transformer: items carry path and index annotations. */
const item = (body: string, file: string, index: number) =>
  body
    .replace(
      /^(metadata:\n)/m,
      `$1  annotations:\n    config.kubernetes.io/index: '${index}'\n    internal.config.kubernetes.io/path: '${file}'\n`,
    )
    .split('\n')
    .map((l, i) => (l === '' ? l : (i === 0 ? '- ' : '  ') + l))
    .join('\n')

const DEPLOYMENT = 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1 # one is enough\n'
const DB =
  'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: "s3cr3t"\n  mode: "on"\ndata:\n  token: aGVsbG8=\n'
const API = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: prod\nstringData:\n  key: abc\n'

const FN_CONFIG = `functionConfig:
  apiVersion: kseal.dev/v1alpha1
  kind: KsealDecrypt
  metadata:
    name: decrypt
    annotations:
      config.kubernetes.io/function: |
        exec:
          path: kseal-krm
  spec:
    keys: [${OTHER_KEY}]
`
const list = (items: string[], config = FN_CONFIG) =>
  `apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n${items.join('')}${config}`

let dir: string
const PLAIN = list([item(DEPLOYMENT, 'web.yaml', 0), item(DB, 'db.secret.yaml', 0), item(API, 'db.secret.yaml', 1)])
let encrypted: string

function shim(input: string, env = cleanEnv(), cwd = dir): Promise<RunResult> {
  // What kustomize does for `exec: {path: kseal-krm}`: run the path with no arguments.
  return run(process.execPath, [path.join(ROOT, 'bin', 'kseal-krm.js')], {cwd, env, input})
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-krm-'))
  // kseal encrypt works on the Secrets inside a ResourceList's items like inside any List.
  const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  encrypted = r.stdout
  expect(encrypted.match(/kseal:v2:/g)).toHaveLength(4)
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('kseal krm as a transformer', () => {
  it('decrypts the Secrets among the items and leaves every other byte of every item as it came', async () => {
    const r = await shim(encrypted)
    expect(r).toEqual({code: 0, stdout: PLAIN, stderr: ''})
  })

  it('is the same as `kseal krm`, and takes keys from KSEAL_KEYS when functionConfig names none', async () => {
    const noKeys = encrypted.replace(/  spec:\n    keys: .*\n/, '')
    expect(noKeys).not.toContain('keys:')
    const r = await kseal(['krm'], {input: noKeys, env: cleanEnv({KSEAL_KEYS: OTHER_KEY})})
    expect(r).toEqual({code: 0, stdout: PLAIN.replace(/  spec:\n    keys: .*\n/, ''), stderr: ''})
  })

  it('reads the options from a ConfigMap functionConfig (data.keys), as kpt passes them', async () => {
    const cm = `functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: kseal}\n  data:\n    keys: ${OTHER_KEY}\n`
    const input = encrypted.slice(0, encrypted.indexOf('functionConfig:')) + cm
    const r = await shim(input)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(PLAIN.slice(0, PLAIN.indexOf('functionConfig:')) + cm)
  })

  it('warns about options it does not know, as a result with severity warning, and still succeeds', async () => {
    const r = await shim(encrypted.replace('  spec:\n    keys:', '  spec:\n    recipients: [x]\n    keys:'))
    expect(r.code).toBe(0)
    const out = parse(r.stdout)
    expect(out.results).toEqual([
      {severity: 'warning', message: 'functionConfig spec.recipients is not a kseal option (known: keys, files); ignored'},
    ])
    expect(out.items[1].stringData.password).toBe('s3cr3t')
  })
})

describe('kseal krm failures', () => {
  it('a Secret without a key is an error result with resourceRef and file; nothing is decrypted; exit 3', async () => {
    // This item carries the older annotations (config.kubernetes.io/path and /index).
    const foreignItem = item(API.replace('name: api', 'name: foreign'), 'other.yaml', 3).replace(
      'internal.config.kubernetes.io/path',
      'config.kubernetes.io/path',
    )
    const foreign = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: list([foreignItem], '')})
    const input = encrypted.replace('functionConfig:', foreign.stdout.replace(/^[\s\S]*?items:\n/, '') + 'functionConfig:')
    const r = await shim(input)
    expect(r.code).toBe(3)
    const out = parse(r.stdout)
    expect(out).toMatchObject({apiVersion: 'config.kubernetes.io/v1', kind: 'ResourceList'})
    expect(out.results).toEqual([
      {
        severity: 'error',
        message: expect.stringMatching(/^no key for this Secret: it is encrypted for rsa:d5326737ee564566/),
        resourceRef: {apiVersion: 'v1', kind: 'Secret', name: 'foreign', namespace: 'prod'},
        file: {path: 'other.yaml', index: 3},
      },
    ])
    // All or nothing: the Secrets that could be decrypted are not, so no plaintext leaves.
    expect(r.stdout).not.toContain('s3cr3t')
    expect(out.items[1].stringData.password).toMatch(/^kseal:v2:/)
    expect(r.stderr).toMatch(/^kseal: document 1 \(Secret prod\/foreign in item 4\): no key for this Secret/)
  })

  it('a Secret item kseal cannot read is an error result too (exit 2)', async () => {
    const r = await shim(
      encrypted.replace(
        'functionConfig:',
        item('apiVersion: v1\nkind: Secret\nmetadata:\n  name: odd\ndata:\n  count: 12\n', 'odd.yaml', 0) + 'functionConfig:',
      ),
    )
    expect(r.code).toBe(2)
    const out = parse(r.stdout)
    expect(out.results).toHaveLength(1)
    expect(out.results[0]).toMatchObject({severity: 'error', message: expect.stringContaining('data.count: value is not a string')})
    expect(r.stdout).not.toContain('s3cr3t')
  })

  it('malformed options are an error result (exit 2)', async () => {
    const r = await shim(encrypted.replace(/    keys: .*\n/, '    keys: {a: b}\n'))
    expect(r.code).toBe(2)
    expect(parse(r.stdout).results).toEqual([{severity: 'error', message: 'functionConfig spec.keys must be a list of strings'}])
  })

  it('input that is not a ResourceList: exit 2, the reason on stderr, nothing on stdout', async () => {
    const notList = await shim('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n')
    expect(notList).toEqual({
      code: 2,
      stdout: '',
      stderr: 'kseal: not a ResourceList (expected apiVersion: config.kubernetes.io/v1, kind: ResourceList)\n',
    })
    const broken = await shim('apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [\n')
    expect(broken.code).toBe(2)
    expect(broken.stdout).toBe('')
  })
})

describe('kseal krm as a generator', () => {
  it('reads spec.files (relative to the kustomization directory), decrypts them and adds them to the items', async () => {
    const f = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: DB + '---\n' + API})
    writeFileSync(path.join(dir, 'db.secret.yaml'), f.stdout)
    // kustomize passes a generator's functionConfig as the only item, marked local-config.
    const config = `apiVersion: kseal.dev/v1alpha1\nkind: KsealDecrypt\nmetadata:\n  name: secrets\n  annotations:\n    config.kubernetes.io/local-config: 'true'\nspec:\n  files: [db.secret.yaml]\n`
    const indent = (text: string, first: string, rest: string) =>
      text
        .trimEnd()
        .split('\n')
        .map((l, i) => (i ? rest : first) + l)
        .join('\n') + '\n'
    const input = `apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n${indent(config, '- ', '  ')}functionConfig:\n${indent(config, '  ', '  ')}`
    const r = await shim(input, cleanEnv({KSEAL_KEYS: OTHER_KEY}))
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = parse(r.stdout, {version: '1.1'})
    expect(out.items.map((i: {metadata: {name: string}}) => i.metadata.name)).toEqual(['secrets', 'db', 'api'])
    expect(out.items[1]).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'db', namespace: 'prod'},
      stringData: {password: 's3cr3t', mode: 'on'},
      data: {token: 'aGVsbG8='},
    })
    expect(out.items[2].stringData).toEqual({key: 'abc'})
  })

  it('reads relative files: from the package directory kpt fn render names on the functionConfig, not the working directory', async () => {
    const pkg = path.join(dir, 'package')
    mkdirSync(path.join(pkg, 'encrypted'), {recursive: true})
    writeFileSync(path.join(pkg, 'encrypted', 'api.yaml'), (await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: API})).stdout)
    const config = (annotations: string) =>
      `functionConfig:\n  apiVersion: kseal.dev/v1alpha1\n  kind: KsealDecrypt\n  metadata:\n    name: s\n    annotations:\n${annotations}  spec:\n    files: [encrypted/api.yaml]\n`
    const named = config(`      config.kubernetes.io/path: 'secrets.yaml'\n      internal.config.kubernetes.io/package-path: '${pkg}'\n`)
    const r = await shim(list([], named).replace('items:\n', 'items: []\n'), cleanEnv({KSEAL_KEYS: OTHER_KEY}), os.tmpdir())
    expect(r).toMatchObject({code: 0, stderr: ''})
    expect(parse(r.stdout).items).toEqual([parse(API)])
    // No package named (kustomize, kpt fn eval): the working directory, which kustomize sets to the kustomization's.
    const unnamed = list([], config(`      config.kubernetes.io/path: 'secrets.yaml'\n`)).replace('items:\n', 'items: []\n')
    expect((await shim(unnamed, cleanEnv({KSEAL_KEYS: OTHER_KEY}), pkg)).code).toBe(0)
    const elsewhere = await shim(unnamed, cleanEnv({KSEAL_KEYS: OTHER_KEY}), os.tmpdir())
    expect(elsewhere.code).toBe(1)
    expect(elsewhere.stderr).toBe(`kseal: ${path.join(os.tmpdir(), 'encrypted', 'api.yaml')}: cannot read: no such file or directory\n`)
  })

  it('a file that cannot be read is an error result naming it', async () => {
    const config =
      'functionConfig:\n  apiVersion: kseal.dev/v1alpha1\n  kind: KsealDecrypt\n  metadata: {name: s}\n  spec:\n    files: [missing.yaml]\n'
    const r = await shim(list([], config).replace('items:\n', 'items: []\n'), cleanEnv({KSEAL_KEYS: OTHER_KEY}))
    expect(r.code).toBe(1)
    expect(parse(r.stdout).results).toEqual([
      {severity: 'error', message: 'cannot read: no such file or directory', file: {path: 'missing.yaml'}},
    ])
  })
})

tool('kubectl').describe("kubectl's built-in kustomize and exec functions", () => {
  /** A kustomization with kseal-krm as a transformer over an encrypted Secret. */
  function kustomization(): string {
    const k = mkdtempSync(path.join(dir, 'kubectl-'))
    writeFileSync(path.join(k, 'kustomization.yaml'), 'resources: [db.yaml]\ntransformers: [kseal.yaml]\n')
    writeFileSync(path.join(k, 'db.yaml'), DB)
    writeFileSync(
      path.join(k, 'kseal.yaml'),
      [
        'apiVersion: kseal.dev/v1alpha1',
        'kind: KsealDecrypt',
        'metadata:',
        '  name: decrypt',
        '  annotations:',
        '    config.kubernetes.io/function: |',
        '      exec:',
        `        path: ${path.join(ROOT, 'bin', 'kseal-krm.js')}`,
        'spec:',
        `  keys: [${OTHER_KEY}]`,
        '',
      ].join('\n'),
    )
    return k
  }

  it('fails without --enable-alpha-plugins, and with it skips the function silently, leaving the Secret encrypted', async () => {
    const k = kustomization()
    const enc = await kseal(['encrypt', '-i', '-r', `rsa:${OTHER_CERT}`, path.join(k, 'db.yaml')])
    expect(enc.code).toBe(0)
    const plain = spawnSync('kubectl', ['kustomize', k], {encoding: 'utf8'})
    expect(plain.status).toBe(1)
    expect(plain.stderr).toContain("external plugins disabled; unable to load external plugin 'KsealDecrypt'")
    const alpha = spawnSync('kubectl', ['kustomize', '--enable-alpha-plugins', k], {encoding: 'utf8'})
    expect({status: alpha.status, stderr: alpha.stderr}).toEqual({status: 0, stderr: ''})
    expect(alpha.stdout).toMatch(/password: kseal:v2:/)
    expect(alpha.stdout).not.toContain('s3cr3t')
  })
})
