/**
 * `kseal check` as a pre-commit guard, in a real git repository: working-tree checks, `--staged`
 * (the index, not the working tree), and the `.pre-commit-hooks.yaml` hook as pre-commit runs it.
 */
import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {BIN, cleanEnv, kseal, OTHER_CERT, ROOT} from './support/cli.js'
import {tool} from './support/tools.js'

const secret = (name: string, body: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: prod\n${body}`
const PLAIN_DB = secret('db', 'stringData:\n  password: s3cr3t\n  user: admin\ndata:\n  empty:\n')
const LIST = [
  'apiVersion: v1',
  'kind: List',
  'items:',
  '  - apiVersion: v1',
  '    kind: ConfigMap',
  '    metadata: {name: c}',
  '  - apiVersion: v1',
  '    kind: Secret',
  '    metadata: {name: in-list}',
  '    data:',
  '      token: aGVsbG8=',
  '',
].join('\n')
const HELM_SECRET = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Values.name }}\nstringData:\n  pw: {{ .Values.pw }}\n'
const TEMPLATE =
  'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels: {{- include "labels" . | nindent 4 }}\n'

let repo: string
let encDb: string

function git(...args: string[]): string {
  const r = spawnSync('git', args, {cwd: repo, encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const check = (args: string[], cwd = repo) => kseal(['check', ...args], {cwd})

beforeAll(async () => {
  repo = mkdtempSync(path.join(os.tmpdir(), 'kseal-check-'))
  git('init', '-q', '-b', 'main')
  git('config', 'user.email', 'dev@example.com')
  git('config', 'user.name', 'Dev')
  git('config', 'commit.gpgsign', 'false')
  const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: PLAIN_DB})
  expect(r.code).toBe(0)
  encDb = r.stdout
})

afterAll(() => rmSync(repo, {recursive: true, force: true}))

describe('kseal check (working tree)', () => {
  let d: string
  beforeAll(() => {
    d = path.join(repo, 'tree')
    mkdirSync(path.join(d, 'chart', 'templates'), {recursive: true})
    writeFileSync(path.join(d, 'db.yaml'), PLAIN_DB)
    writeFileSync(path.join(d, 'db.enc.yaml'), encDb)
    writeFileSync(path.join(d, 'list.json'), JSON.stringify(parse(LIST)))
    writeFileSync(path.join(d, 'chart', 'templates', 'deploy.yaml'), TEMPLATE)
    writeFileSync(path.join(d, 'notes.txt'), 'password: s3cr3t')
  })

  it('exits 1 with one line per Secret holding plaintext: file, document, Secret, keys', async () => {
    const r = await check([d])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe(
      `${d}/db.yaml: document 1 (Secret prod/db): plaintext stringData.password, stringData.user\n` +
        `${d}/list.json: document 1 (Secret in-list in item 2): plaintext data.token\n`,
    )
    expect(r.stderr).toContain(
      `skipped 1 Helm chart template (check what it renders: helm template CHART | kseal check -): ${d}/chart/templates/deploy.yaml`,
    )
    expect(r.stderr).toContain('2 Secrets hold plaintext values: encrypt them with kseal encrypt -i FILE')
    expect(r.stdout + r.stderr).not.toContain('s3cr3t')
  })

  it('exits 0 with nothing on stdout when every value is encrypted; no PATH means the current directory', async () => {
    expect(await check([path.join(d, 'db.enc.yaml')])).toEqual({code: 0, stdout: '', stderr: ''})
    const clean = path.join(repo, 'clean')
    mkdirSync(clean)
    writeFileSync(path.join(clean, 'a.yaml'), encDb)
    expect(await check([], clean)).toEqual({code: 0, stdout: '', stderr: ''})
    const none = path.join(repo, 'none')
    mkdirSync(none)
    expect((await check([], none)).code).toBe(0)
  })

  it('a plaintext value added to an encrypted Secret is caught; so is stdin', async () => {
    const mixed = encDb.replace('stringData:\n', 'stringData:\n  added: oops\n')
    const r = await kseal(['check', '-'], {input: mixed})
    expect(r).toMatchObject({code: 1, stdout: '(stdin): document 1 (Secret prod/db): plaintext stringData.added\n'})
  })

  it('a file it cannot parse that mentions kind: Secret cannot be vouched for: exit 2', async () => {
    const f = path.join(repo, 'broken.yaml')
    writeFileSync(f, HELM_SECRET)
    const r = await check([f])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/broken\.yaml: document 1 \(Secret \(unnamed\)\): stringData\.pw: value is not a string/)
    const json = path.join(repo, 'broken.json')
    writeFileSync(json, '{"apiVersion": "v1", "kind": "Secret", "stringData": {"pw": "x",}}\n')
    expect((await check([json])).code).toBe(2)
    writeFileSync(json, '{"apiVersion": "v1", "kind": "ConfigMap",}\n')
    expect(await check([json])).toMatchObject({
      code: 0,
      stderr: `kseal: skipped 1 file that is not valid YAML or JSON and does not mention kind: Secret: ${json}\n`,
    })
  })

  it("a Helm chart's templates are skipped with a note, Secrets among them too; a file in templates/ without template actions is still checked", async () => {
    const chart = path.join(repo, 'mychart')
    mkdirSync(path.join(chart, 'templates', 'db'), {recursive: true})
    writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: mychart\nversion: 0.1.0\n')
    writeFileSync(path.join(chart, 'values.yaml'), 'password: ""\n')
    writeFileSync(path.join(chart, 'templates', 'secret.yaml'), HELM_SECRET)
    writeFileSync(path.join(chart, 'templates', 'db', 'quoted.yaml'), HELM_SECRET.replace(/\{\{ (\S+) \}\}/g, '"{{ $1 }}"'))
    const r = await check([chart])
    expect(r).toEqual({
      code: 0,
      stdout: '',
      stderr: `kseal: skipped 2 Helm chart templates (check what they render: helm template CHART | kseal check -): ${chart}/templates/db/quoted.yaml, ${chart}/templates/secret.yaml\n`,
    })
    // A plaintext Secret without template actions in templates/ is still a manifest, and caught.
    writeFileSync(path.join(chart, 'templates', 'plain.yaml'), PLAIN_DB)
    expect((await check([chart])).code).toBe(1)
    rmSync(chart, {recursive: true})
  })
})

describe('kseal check --staged', () => {
  let d: string
  beforeAll(() => {
    d = path.join(repo, 'staged')
    mkdirSync(d)
  })

  it('checks the blobs in the index, not the working tree (also before the first commit)', async () => {
    writeFileSync(path.join(d, 'db.yaml'), PLAIN_DB)
    git('add', 'staged/db.yaml')
    writeFileSync(path.join(d, 'db.yaml'), encDb) // encrypted in the working tree, not staged
    const staged = await check(['--staged'])
    expect(staged.code).toBe(1)
    expect(staged.stdout).toBe('staged/db.yaml: document 1 (Secret prod/db): plaintext stringData.password, stringData.user\n')
    expect(staged.stderr).toContain('then git add FILE')
    expect((await check([path.join(d, 'db.yaml')])).code).toBe(0)

    git('add', 'staged/db.yaml') // now the encrypted version is staged
    expect(await check(['--staged'])).toEqual({code: 0, stdout: '', stderr: ''})
    writeFileSync(path.join(d, 'db.yaml'), PLAIN_DB) // plaintext only in the working tree
    expect((await check(['--staged'])).code).toBe(0)
    expect((await check([path.join(d, 'db.yaml')])).code).toBe(1)
  })

  it('after a commit it looks only at what is staged, from any subdirectory, limited by pathspecs', async () => {
    writeFileSync(path.join(d, 'db.yaml'), encDb)
    git('add', 'staged/db.yaml')
    git('commit', '-q', '-m', 'encrypted db')
    expect(await check(['--staged'])).toEqual({code: 0, stdout: '', stderr: ''})
    mkdirSync(path.join(d, 'sub'))
    writeFileSync(path.join(d, 'sub', 'api.yml'), secret('api', 'stringData:\n  key: abc\n'))
    writeFileSync(path.join(d, 'sub', 'readme.md'), secret('doc', 'stringData:\n  key: abc\n'))
    git('add', 'staged/sub')
    const r = await check(['--staged'], path.join(d, 'sub'))
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('staged/sub/api.yml: document 1 (Secret prod/api): plaintext stringData.key\n')
    expect((await check(['--staged', 'staged/db.yaml'])).code).toBe(0)
    expect((await check(['--staged', 'staged/sub'])).code).toBe(1)
    git('rm', '-q', '--cached', '-r', 'staged/sub')
  })

  it('outside a git repository: exit 2 with the reason', async () => {
    const r = await check(['--staged'], os.tmpdir())
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^kseal: --staged needs a git repository/)
  })
})

describe('.pre-commit-hooks.yaml', () => {
  const hooks = parse(readFileSync(path.join(ROOT, '.pre-commit-hooks.yaml'), 'utf8'))
  const hook = hooks.find((h: {id: string}) => h.id === 'kseal-check')

  it('declares kseal-check: entry kseal check on YAML and JSON files', () => {
    expect(hook).toMatchObject({id: 'kseal-check', entry: 'kseal check', language: 'system'})
    const files = new RegExp(hook.files)
    for (const f of ['a.yaml', 'k8s/b.yml', 'c.json']) expect(files.test(f)).toBe(true)
    for (const f of ['a.txt', 'yaml.md', 'a.yaml.bak']) expect(files.test(f)).toBe(false)
  })

  it('run as pre-commit runs it (entry + the matching staged file names) it blocks plaintext', async () => {
    const bin = path.join(repo, 'bin')
    mkdirSync(bin)
    writeFileSync(path.join(bin, 'kseal'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
    chmodSync(path.join(bin, 'kseal'), 0o755)
    // The staged files it is handed (the same as the working-tree tests have, written here too).
    mkdirSync(path.join(repo, 'tree'), {recursive: true})
    writeFileSync(path.join(repo, 'tree', 'db.yaml'), PLAIN_DB)
    writeFileSync(path.join(repo, 'tree', 'db.enc.yaml'), encDb)
    writeFileSync(path.join(repo, 'tree', 'notes.txt'), 'password: s3cr3t')
    const files = ['tree/db.yaml', 'tree/db.enc.yaml', 'tree/notes.txt'].filter((f) => new RegExp(hook.files).test(f))
    const run = (names: string[]) =>
      spawnSync('sh', ['-c', `${hook.entry} "$@"`, 'hook', ...names], {
        cwd: repo,
        encoding: 'utf8',
        env: cleanEnv({PATH: `${bin}:${process.env.PATH}`}) as NodeJS.ProcessEnv,
      })
    const blocked = run(files)
    expect(blocked.status).toBe(1)
    expect(blocked.stdout).toBe('tree/db.yaml: document 1 (Secret prod/db): plaintext stringData.password, stringData.user\n')
    expect(run(['tree/db.enc.yaml']).status).toBe(0)
  })
})

tool('pre-commit').describe('pre-commit itself runs the hook (offline: language system runs the kseal on PATH)', () => {
  let base: string
  let hookRepo: string
  let project: string
  let env: NodeJS.ProcessEnv
  const inProject = (cmd: string, args: string[]) => spawnSync(cmd, args, {cwd: project, encoding: 'utf8', env})

  afterAll(() => rmSync(base, {recursive: true, force: true}))
  beforeAll(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'kseal-pre-commit-'))
    const bin = path.join(base, 'bin')
    mkdirSync(bin)
    writeFileSync(path.join(bin, 'kseal'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
    chmodSync(path.join(bin, 'kseal'), 0o755)
    // No network, no user configuration: pre-commit's cache and git's identity live in the scratch directory.
    env = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: base,
      PRE_COMMIT_HOME: path.join(base, 'cache'),
      GIT_AUTHOR_NAME: 'Dev',
      GIT_AUTHOR_EMAIL: 'dev@example.com',
      GIT_COMMITTER_NAME: 'Dev',
      GIT_COMMITTER_EMAIL: 'dev@example.com',
      GIT_CONFIG_NOSYSTEM: '1',
      LANG: 'C.UTF-8',
    }
    // The hook repository as users reference it: a git repository (here a local copy), pinned to a commit SHA.
    hookRepo = path.join(base, 'kseal-hooks')
    mkdirSync(hookRepo)
    writeFileSync(path.join(hookRepo, '.pre-commit-hooks.yaml'), readFileSync(path.join(ROOT, '.pre-commit-hooks.yaml')))
    const g = (cwd: string, ...args: string[]) => {
      const r = spawnSync('git', args, {cwd, encoding: 'utf8', env})
      if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`)
      return r.stdout.trim()
    }
    g(hookRepo, 'init', '-q', '-b', 'main')
    g(hookRepo, 'add', '.')
    g(hookRepo, 'commit', '-q', '-m', 'hooks')
    const sha = g(hookRepo, 'rev-parse', 'HEAD')
    project = path.join(base, 'project')
    mkdirSync(project)
    g(project, 'init', '-q', '-b', 'main')
    writeFileSync(
      path.join(project, '.pre-commit-config.yaml'),
      `repos:\n  - repo: ${hookRepo}\n    rev: ${sha}   # a commit SHA: kseal tags no releases yet\n    hooks: [{id: kseal-check}]\n`,
    )
    g(project, 'add', '.pre-commit-config.yaml')
    g(project, 'commit', '-q', '-m', 'pre-commit config')
    const install = inProject('pre-commit', ['install'])
    expect(install.status).toBe(0)
  })

  it('git commit of a plaintext Secret is blocked; the encrypted one is committed', () => {
    writeFileSync(path.join(project, 'db.yaml'), PLAIN_DB)
    expect(inProject('git', ['add', 'db.yaml']).status).toBe(0)
    const blocked = inProject('git', ['commit', '-m', 'db'])
    expect(blocked.status).not.toBe(0)
    expect(blocked.stdout + blocked.stderr).toContain(
      'db.yaml: document 1 (Secret prod/db): plaintext stringData.password, stringData.user',
    )
    expect(blocked.stdout + blocked.stderr).toMatch(/kseal check \(no plaintext Secrets\)\.+Failed/)
    expect(inProject('git', ['log', '--oneline']).stdout.trim().split('\n')).toHaveLength(1)

    writeFileSync(path.join(project, 'db.yaml'), encDb)
    expect(inProject('git', ['add', 'db.yaml']).status).toBe(0)
    const passed = inProject('git', ['commit', '-m', 'db'])
    expect({status: passed.status, out: passed.stdout + passed.stderr}).toEqual({
      status: 0,
      out: expect.stringMatching(/kseal check \(no plaintext Secrets\)\.+Passed/),
    })
    expect(inProject('git', ['log', '--oneline']).stdout.trim().split('\n')).toHaveLength(2)
  })
})
