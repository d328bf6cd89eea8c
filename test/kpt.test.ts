/**
 * The KRM function (kseal-krm) run by the real kpt. kpt runs an exec function in kpt's own working
 * directory. `kpt fn render` names the package's directory on the functionConfig
 * (internal.config.kubernetes.io/package-path), so `files:` resolve against the package from
 * anywhere; `kpt fn eval` names none, so there they resolve against where kpt runs. And render
 * without -o writes the decrypted Secrets into the package's files.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import {kseal, OTHER_CERT, OTHER_KEY, ROOT} from './support/cli.js'
import {tool} from './support/tools.js'

const KRM = path.join(ROOT, 'bin', 'kseal-krm.js')
const CONFIG_MAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n'
const DB = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: s3cr3t # the password\n'
const API = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: prod\nstringData:\n  token: t0k3n\n'

/** A function config as kpt reads it from the package: local-config, so it is no resource. */
const fnConfig = (spec: string) =>
  `apiVersion: kseal.dev/v1alpha1\nkind: KsealDecrypt\nmetadata:\n  name: decrypt\n  annotations:\n    config.kubernetes.io/local-config: "true"\nspec:\n  keys: [${OTHER_KEY}]\n${spec}`
const kptfile = (configPath: string) =>
  `apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: app\npipeline:\n  mutators:\n    - exec: ${KRM}\n      configPath: ${configPath}\n`

let work: string
let encDb: string
let encApi: string

function kpt(args: string[], cwd = work) {
  return spawnSync('kpt', ['fn', ...args], {cwd, encoding: 'utf8', env: {...process.env, KSEAL_KEYS: ''}})
}
const secretsOf = (stdout: string) =>
  parseAllDocuments(stdout)
    .map((d) => d.toJS())
    .filter((o) => o?.kind === 'Secret')

/** A package directory under work/ with these files. */
function pkg(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name)
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), {recursive: true})
    writeFileSync(path.join(dir, f), text)
  }
  return dir
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'kseal-kpt-'))
  encDb = (await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: DB})).stdout
  encApi = (await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: API})).stdout
  expect(encDb).toMatch(/password: kseal:v2:\S+ # the password/)
})
afterAll(() => rmSync(work, {recursive: true, force: true}))

const kptTool = tool('kpt')

kptTool.describe('kseal-krm under kpt', () => {
  kptTool.it(
    "kpt fn eval --exec decrypts the package's Secrets to stdout (-o unwrap), run from the parent directory; the files stay encrypted",
    () => {
      const dir = pkg('eval', {'settings.yaml': CONFIG_MAP, 'db.secret.yaml': encDb, 'fn.yaml': fnConfig('')})
      const r = kpt(['eval', 'eval', '--exec', KRM, '--fn-config', 'eval/fn.yaml', '-o', 'unwrap'])
      expect(r.status).toBe(0)
      expect(r.stdout).toContain(DB)
      expect(r.stdout).toContain(CONFIG_MAP)
      expect(readFileSync(path.join(dir, 'db.secret.yaml'), 'utf8')).toBe(encDb)
    },
  )

  kptTool.it("kpt fn render (a Kptfile exec mutator) reads files: from the package's directory, wherever kpt runs", () => {
    // A generator: the encrypted files stay out of the package's resources (.krmignore).
    const files = {
      Kptfile: kptfile('secrets.yaml'),
      '.krmignore': 'encrypted/\n',
      'settings.yaml': CONFIG_MAP,
      'secrets.yaml': fnConfig('  files: [encrypted/db.secret.yaml, encrypted/api.secret.yaml]\n'),
      'encrypted/db.secret.yaml': encDb,
      'encrypted/api.secret.yaml': encApi,
    }
    pkg('render', files)
    for (const cwd of [work, path.join(work, 'render'), os.tmpdir()]) {
      const r = kpt(['render', path.join(work, 'render'), '--allow-exec', '-o', 'unwrap'], cwd)
      expect({cwd, status: r.status, stderr: r.status ? r.stderr : ''}).toEqual({cwd, status: 0, stderr: ''})
      expect(secretsOf(r.stdout)).toEqual([
        {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db', namespace: 'prod'}, stringData: {password: 's3cr3t'}},
        {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'api', namespace: 'prod'}, stringData: {token: 't0k3n'}},
      ])
    }
  })

  kptTool.it('kpt fn eval names no package to the function: files: resolve against where kpt runs', () => {
    const dir = pkg('evalgen', {
      'settings.yaml': CONFIG_MAP,
      'fn.yaml': fnConfig('  files: [encrypted/db.secret.yaml]\n'),
      '.krmignore': 'encrypted/\n',
      'encrypted/db.secret.yaml': encDb,
    })
    // From the package's directory: found.
    const inPkg = kpt(['eval', '.', '--exec', KRM, '--fn-config', 'fn.yaml', '-o', 'unwrap'], dir)
    expect(inPkg.status).toBe(0)
    expect(secretsOf(inPkg.stdout)).toEqual([
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db', namespace: 'prod'}, stringData: {password: 's3cr3t'}},
    ])
    // From the parent: not found, and the error says which file and where it was looked for.
    const fromParent = kpt(['eval', 'evalgen', '--exec', KRM, '--fn-config', 'evalgen/fn.yaml', '-o', 'unwrap'])
    expect(fromParent.status).not.toBe(0)
    expect(fromParent.stderr).toContain(`kseal: ${path.join(work, 'encrypted', 'db.secret.yaml')}: cannot read: no such file or directory`)
    expect(fromParent.stdout).not.toContain('s3cr3t')
  })

  kptTool.it("kpt fn render without -o writes the decrypted Secrets into the package's files (which kseal check then flags)", () => {
    const dir = pkg('inplace', {Kptfile: kptfile('fn.yaml'), 'db.secret.yaml': encDb, 'fn.yaml': fnConfig('')})
    const r = kpt(['render', dir, '--allow-exec'])
    expect(r.status).toBe(0)
    expect(readFileSync(path.join(dir, 'db.secret.yaml'), 'utf8')).toContain('password: s3cr3t # the password')
    const check = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'run.js'), 'check', dir], {encoding: 'utf8'})
    expect(check.status).toBe(1)
    expect(check.stdout).toContain('plaintext stringData.password')
  })
})
