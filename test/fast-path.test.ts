/**
 * The fast path (src/cli/fast.ts) against oclif: every command line of a corpus — the hot commands
 * with their flags, stdin, environment variables that stand for flags, bad flags, help, completion —
 * runs once through bin/run.js (the fast path first) and once through dist/cli/run.js (oclif alone),
 * and both must give the same stdout, stderr, exit code and files. Each case also says whether the
 * fast path is meant to run it, checked against its own decision (decide, with the built spec), so
 * the comparison cannot pass by oclif running everything.
 */
import {spawnSync} from 'node:child_process'
import {chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {decide, type FastSpec, parseFast} from '../src/cli/fast.js'
import {BIN, cleanEnv, kseal, OTHER_KEY, ROOT, run, TEAM_CERT, TEAM_KEY} from './support/cli.js'

const OCLIF = path.join(ROOT, 'dist', 'cli', 'run.js')
const SECRET = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: s3cr3t\n  user: admin\n'
const CONFIGMAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n'
const TEMPLATE = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Values.name }}\nstringData:\n  pw: {{ .Values.pw }}\n'

let tmp: string
let spec: FastSpec
let encrypted: string
let ageKey: string

interface Case {
  argv: string[]
  /** Whether the fast path runs it (else oclif does, on both sides). */
  fast: boolean
  input?: string
  env?: Record<string, string>
  /** Files the command may change: compared after both runs. */
  files?: Record<string, string>
}

/** Every case runs in a fresh copy of this directory, as its working directory. */
function workdir(): string {
  const d = mkdtempSync(path.join(tmp, 'run-'))
  cpSync(path.join(tmp, 'tree'), d, {recursive: true})
  return d
}

beforeAll(async () => {
  spec = JSON.parse(readFileSync(path.join(ROOT, 'dist', 'cli', 'fast-spec.json'), 'utf8')) as FastSpec
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-fast-'))
  const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: SECRET})
  expect(r.code).toBe(0)
  encrypted = r.stdout
  const tree = path.join(tmp, 'tree')
  // An age key: its backend loads a package with import() on either path.
  const age = await import('age-encryption')
  const identity = await age.generateIdentity()
  ageKey = path.join(tmp, 'age.key')
  writeFileSync(ageKey, identity + '\n', {mode: 0o600})
  const a = await kseal(['encrypt', '-r', `age:${await age.identityToRecipient(identity)}`], {input: SECRET})
  expect(a.code).toBe(0)
  mkdirSync(path.join(tree, 'k8s', 'templates'), {recursive: true})
  mkdirSync(path.join(tree, 'keys'))
  writeFileSync(path.join(tree, 'enc.yaml'), encrypted)
  writeFileSync(path.join(tree, 'age.yaml'), a.stdout)
  writeFileSync(path.join(tree, 'plain.yaml'), SECRET)
  writeFileSync(path.join(tree, 'cm.yaml'), CONFIGMAP)
  writeFileSync(path.join(tree, 'bad.yaml'), 'kind: Secret\n  : : [\n')
  writeFileSync(path.join(tree, 'binary.yaml'), Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]))
  writeFileSync(path.join(tree, 'k8s', 'enc.yaml'), encrypted)
  writeFileSync(path.join(tree, 'k8s', 'cm.yaml'), CONFIGMAP)
  writeFileSync(path.join(tree, 'k8s', 'templates', 'secret.yaml'), TEMPLATE)
  copyFileSync(TEAM_KEY, path.join(tree, 'keys', 'team.key'))
  chmodSync(path.join(tree, 'keys', 'team.key'), 0o600)
  // A git repository with a plaintext Secret staged, for check --staged.
  const git = (...a: string[]) => expect(spawnSync('git', a, {cwd: tree, encoding: 'utf8'}).status).toBe(0)
  git('init', '-q', '-b', 'main')
  git('add', 'plain.yaml', 'enc.yaml')
})

afterAll(() => rmSync(tmp, {recursive: true, force: true}))

const K = ['-k', TEAM_KEY]
const cases: Case[] = [
  // decrypt
  {argv: ['decrypt', ...K, 'enc.yaml'], fast: true},
  {argv: ['decrypt', '--key', TEAM_KEY, 'enc.yaml', 'k8s/enc.yaml', 'cm.yaml'], fast: true},
  {argv: ['decrypt', '-k', OTHER_KEY, '-k', TEAM_KEY, 'enc.yaml'], fast: true},
  {argv: ['decrypt', '-k', TEAM_KEY, 'enc.yaml', '-q'], fast: true},
  {argv: ['decrypt', '-q', ...K, 'k8s'], fast: true},
  {argv: ['decrypt', ...K], fast: true, input: '<encrypted>'},
  {argv: ['decrypt', ...K, '-'], fast: true, input: '<encrypted>'},
  {argv: ['decrypt', ...K, '-'], fast: true, input: 'kind: Secret\n  : : [\n'},
  {argv: ['decrypt', 'enc.yaml'], fast: true},
  {argv: ['decrypt', '-k', OTHER_KEY, 'enc.yaml'], fast: true},
  {argv: ['decrypt', ...K, 'missing.yaml'], fast: true},
  {argv: ['decrypt', ...K, 'bad.yaml'], fast: true},
  {argv: ['decrypt', '--debug', ...K, 'bad.yaml'], fast: true},
  {argv: ['decrypt', ...K, 'enc.yaml', 'missing.yaml'], fast: true},
  {argv: ['decrypt', '-i', ...K, 'enc.yaml'], fast: true, files: {'enc.yaml': ''}},
  {argv: ['decrypt', '--in-place', '-q', ...K, 'k8s'], fast: true, files: {'k8s/enc.yaml': '', 'k8s/cm.yaml': ''}},
  {argv: ['decrypt', 'enc.yaml'], fast: true, env: {KSEAL_KEYS: TEAM_KEY}},
  {argv: ['decrypt', '-k', '<age>', 'age.yaml'], fast: true},
  {argv: ['decrypt', 'age.yaml', 'cm.yaml'], fast: true, env: {KSEAL_KEYS: '<age>'}},
  {argv: ['textconv', '-k', '<age>', 'age.yaml'], fast: true},
  {argv: ['decrypt', 'enc.yaml'], fast: true, env: {KSEAL_KEYS: 'keys'}},
  {argv: ['decrypt', 'enc.yaml'], fast: true, env: {XDG_CONFIG_HOME: '.'}},
  {argv: ['decrypt', 'enc.yaml'], fast: false, env: {DEBUG: 'kseal'}},
  {argv: ['decrypt', ...K, 'bad.yaml'], fast: false, env: {KSEAL_DEBUG: '1'}},
  {argv: ['decrypt', ...K, 'enc.yaml'], fast: false, env: {OCLIF_COLUMNS: '40'}},
  // decrypt: bad or unusual command lines, all oclif's
  {argv: ['decrypt', '--nope', 'enc.yaml'], fast: false},
  {argv: ['decrypt', '-x', 'enc.yaml'], fast: false},
  {argv: ['decrypt', '-k'], fast: false},
  {argv: ['decrypt', 'enc.yaml', '-k'], fast: false},
  {argv: ['decrypt', `--key=${TEAM_KEY}`, 'enc.yaml'], fast: false},
  {argv: ['decrypt', `-k${TEAM_KEY}`, 'enc.yaml'], fast: false},
  {argv: ['decrypt', '-qi', ...K, 'enc.yaml'], fast: false, files: {'enc.yaml': ''}},
  {argv: ['decrypt', '-q', '-q', ...K, 'enc.yaml'], fast: false},
  {argv: ['decrypt', ...K, '--', 'enc.yaml'], fast: false},
  {argv: ['decrypt', ...K, '', 'enc.yaml'], fast: false},
  {argv: ['decrypt', '--in-place=false', ...K, 'enc.yaml'], fast: false},
  {argv: ['decrypt', '--help'], fast: false},
  {argv: ['decrypt', ...K, 'enc.yaml', '--help'], fast: false},
  {argv: ['decrypt', '-h'], fast: false},
  {argv: ['decrypt', '--json', 'enc.yaml'], fast: false},
  // textconv
  {argv: ['textconv', 'enc.yaml'], fast: true},
  {argv: ['textconv', ...K, 'enc.yaml'], fast: true},
  {argv: ['textconv', '-k', TEAM_KEY, '--key', OTHER_KEY, 'enc.yaml'], fast: true},
  {argv: ['textconv', 'enc.yaml'], fast: true, env: {KSEAL_KEYS: TEAM_KEY}},
  {argv: ['textconv', 'plain.yaml'], fast: true},
  {argv: ['textconv', 'bad.yaml'], fast: true},
  {argv: ['textconv', 'binary.yaml'], fast: true},
  {argv: ['textconv', 'missing.yaml'], fast: true},
  {argv: ['textconv', 'k8s'], fast: true},
  {argv: ['textconv', '-'], fast: true, input: '<encrypted>'},
  {argv: ['textconv'], fast: false},
  {argv: ['textconv', 'enc.yaml', 'plain.yaml'], fast: false},
  {argv: ['textconv', '-i', 'enc.yaml'], fast: false},
  {argv: ['textconv', '--help'], fast: false},
  // check
  {argv: ['check', 'plain.yaml'], fast: true},
  {argv: ['check', 'enc.yaml', 'cm.yaml'], fast: true},
  {argv: ['check'], fast: true},
  {argv: ['check', '-q'], fast: true},
  {argv: ['check', 'k8s'], fast: true},
  {argv: ['check', 'k8s/templates/secret.yaml', 'bad.yaml'], fast: true},
  {argv: ['check', 'binary.yaml'], fast: true},
  {argv: ['check', 'missing.yaml', 'plain.yaml'], fast: true},
  {argv: ['check', '-'], fast: true, input: SECRET},
  {argv: ['check', '-'], fast: true, input: 'kind: Secret\n  : : [\n'},
  {argv: ['check', '--staged'], fast: true},
  {argv: ['check', '--staged', 'enc.yaml'], fast: true},
  {argv: ['check', '--staged', '--nope'], fast: false},
  {argv: ['check', '--staged=true'], fast: false},
  {argv: ['check', '-k', TEAM_KEY, 'plain.yaml'], fast: false},
  {argv: ['check', '--help'], fast: false},
  // --version, help, completion and the rest: oclif's, but --version
  {argv: ['--version'], fast: true},
  {argv: ['--version'], fast: false, env: {KSEAL_DATA_DIR: '.'}},
  {argv: ['--version', '--help'], fast: false},
  {argv: ['--help'], fast: false},
  {argv: [], fast: false},
  {argv: ['-h'], fast: false},
  {argv: ['help', 'decrypt'], fast: false},
  {argv: ['decryp'], fast: false},
  {argv: ['autocomplete', 'script', 'bash'], fast: false},
  {argv: ['encrypt', '-r', `rsa:${TEAM_CERT}`, '-'], fast: false, input: CONFIGMAP},
]

/** Fills in what the corpus can only name before beforeAll has run: the encrypted text and the age key's path. */
function render(c: Case): Case {
  const fill = (x: string) => (x === '<age>' ? ageKey : x)
  return {
    ...c,
    argv: c.argv.map(fill),
    env: c.env && Object.fromEntries(Object.entries(c.env).map(([k, v]) => [k, fill(v)])),
    input: c.input === '<encrypted>' ? encrypted : c.input,
  }
}

describe('the fast path gives what oclif gives', () => {
  it.each(cases.map((c) => [c.argv.join(' ').replaceAll(tmp, '$TMP'), c] as const))('kseal %s', async (_name, raw) => {
    const c = render(raw)
    const env = (d: string) =>
      cleanEnv({HOME: d, ...Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, v === '.' ? d : v]))})
    const fastDir = workdir()
    const oclifDir = workdir()
    const fast = await run(process.execPath, [BIN, ...c.argv], {cwd: fastDir, env: env(fastDir), input: c.input})
    const oclif = await run(process.execPath, [OCLIF, ...c.argv], {cwd: oclifDir, env: env(oclifDir), input: c.input})
    // Paths of the two working directories differ, and so do a --debug stack trace's frames (one
    // bundle or ESM chunks); nothing else may.
    const norm = (s: string, d: string) => s.replaceAll(d, '$CWD').replace(/(\n {4}at [^\n]*)+/g, '\n    at (frames)')
    expect({code: fast.code, stdout: norm(fast.stdout, fastDir), stderr: norm(fast.stderr, fastDir)}).toEqual({
      code: oclif.code,
      stdout: norm(oclif.stdout, oclifDir),
      stderr: norm(oclif.stderr, oclifDir),
    })
    for (const f of Object.keys(c.files ?? {}))
      expect(readFileSync(path.join(fastDir, f), 'utf8')).toBe(readFileSync(path.join(oclifDir, f), 'utf8'))
    // The fast path's own decision, in the environment bin/run.js gives it.
    const decision = decide(c.argv, env(fastDir) as NodeJS.ProcessEnv, spec)
    // Each run worked or failed alike; a case meant to succeed did (the age key opens its file).
    if (c.argv.includes(ageKey) || c.env?.KSEAL_KEYS === ageKey) expect(fast).toMatchObject({code: 0, stderr: ''})
    expect(decision !== null).toBe(c.fast)
  })

  it('the corpus has both paths and a real answer in each', () => {
    expect(cases.filter((c) => c.fast).length).toBeGreaterThan(30)
    expect(cases.filter((c) => !c.fast).length).toBeGreaterThan(25)
  })
})

describe('parseFast reads what it models and declines the rest', () => {
  const decrypt = () => spec.commands.decrypt
  it('flags anywhere, repeatable keys, positional paths and stdin', () => {
    expect(parseFast(decrypt(), ['a.yaml', '-k', 'x', '--key', 'y', '-i', '-q', '-', 'b.yaml'])).toEqual({
      flags: {key: ['x', 'y'], 'in-place': true, quiet: true},
      args: {path: 'a.yaml'},
      argv: ['a.yaml', '-', 'b.yaml'],
    })
  })
  it.each([[['--key=x']], [['-kx']], [['-iq']], [['--']], [['-k']], [['-k', '-q']], [['-k', '']], [['-i', '-i']], [['--nope']], [['-x']]])(
    'declines %j',
    (argv) => expect(parseFast(decrypt(), argv)).toBeNull(),
  )
  it('a required argument missing or an extra one on a strict command', () => {
    expect(parseFast(spec.commands.textconv, [])).toBeNull()
    expect(parseFast(spec.commands.textconv, ['a', 'b'])).toBeNull()
    expect(parseFast(spec.commands.textconv, ['a'])).toEqual({flags: {}, args: {file: 'a'}, argv: ['a']})
  })
})

describe('the fast bundle as built', () => {
  it('its V8 code cache is accepted by this Node (else every run compiles the bundle again)', async () => {
    const {loadBundle} = (await import(path.join(ROOT, 'bin', 'fast.js'))) as {
      loadBundle(f: string, c: Buffer): {script: {cachedDataRejected?: boolean}}
    }
    const file = path.join(ROOT, 'dist', 'cli', 'fast.cjs')
    expect(loadBundle(file, readFileSync(file + '.cache')).script.cachedDataRejected).toBe(false)
  })

  it('plainInterop drops esbuild interop only where the bundle reads nothing but .default, or nothing but named exports', async () => {
    const {plainInterop} = (await import(path.join(ROOT, 'scripts', 'interop.mjs'))) as {plainInterop(code: string): string}
    const code = [
      'var import_node_crypto,x,init_a=__esm({"a.ts"(){import_node_crypto=__toESM(require("node:crypto"),1)}});',
      'var import_yaml,init_b=__esm({"b.ts"(){import_yaml=__toESM(require_dist(),1)}});',
      'var import_mixed,init_c=__esm({"c.ts"(){import_mixed=__toESM(require("node:os"),1)}});',
      'var import_passed,init_d=__esm({"d.ts"(){import_passed=__toESM(require("node:path"),1)}});',
      'f(import_node_crypto.default.createHash);(0,import_yaml.isMap)(n);import_yaml.Scalar;',
      'import_mixed.default.arch();import_mixed.EOL;g(import_passed);',
    ].join('\n')
    const out = plainInterop(code)
    expect(out).toContain('import_node_crypto={default:require("node:crypto")}')
    expect(out).toContain('import_yaml=require_dist()')
    expect(out).toContain('import_mixed=__toESM(require("node:os"),1)')
    expect(out).toContain('import_passed=__toESM(require("node:path"),1)')
  })
})
