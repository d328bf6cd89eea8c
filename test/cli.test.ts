/** The CLI as users meet it: help, stdin/stdout, in-place writes, several files, progress, inspect. */
import {spawn, spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {BIN, cleanEnv, kseal, ROOT, TEAM_CERT, TEAM_KEY} from './support/cli.js'

const secret = (name: string, value = `value-of-${name}`) =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: default\nstringData:\n  token: ${value}\n`
let dir: string
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-cli-'))
})

describe('help and version', () => {
  it('lists every command', async () => {
    const r = await kseal(['--help'])
    expect(r.code).toBe(0)
    for (const c of ['encrypt', 'decrypt', 'inspect', 'keygen']) expect(r.stdout).toMatch(new RegExp(`\\n  ${c}\\s`))
  })

  it.each(['encrypt', 'decrypt', 'inspect', 'keygen'])('%s --help has a description, flags and examples', async (c) => {
    const r = await kseal([c, '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/USAGE/)
    expect(r.stdout).toMatch(/EXAMPLES/)
    expect(r.stdout).toMatch(/\$ kseal /)
  })

  it('every command in the manifest has a summary, examples and a description for each flag', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8'))
    const ids = Object.keys(manifest.commands)
    expect(ids.length).toBeGreaterThanOrEqual(14)
    for (const id of ids) {
      const c = manifest.commands[id]
      expect({id, summary: Boolean(c.summary || c.description)}).toEqual({id, summary: true})
      expect({id, examples: (c.examples ?? []).length > 0}).toEqual({id, examples: true})
      for (const [name, f] of Object.entries(c.flags as Record<string, {description?: string}>)) {
        expect({id, flag: name, described: Boolean(f.description)}).toEqual({id, flag: name, described: true})
      }
    }
  })

  it("npx kseal runs the package's own bin", () => {
    const r = spawnSync('npx', ['--no-install', 'kseal', '--version'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {...process.env, npm_config_yes: 'false'},
    })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^kseal\/0\.1\.0 /)
  })

  it('--version prints the package version', async () => {
    const r = await kseal(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^kseal\/0\.1\.0 /)
  })
})

describe('encrypt and decrypt', () => {
  it('stdin → stdout, and - means stdin', async () => {
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`, '-'], {input: secret('a')})
    expect(enc.code).toBe(0)
    expect(enc.stderr).toBe('')
    expect(enc.stdout).toMatch(/  token: kseal:v2:/)
    const dec = await kseal(['decrypt', '-k', TEAM_KEY], {input: enc.stdout})
    expect(dec.stdout).toBe(secret('a'))
  })

  it('-i rewrites files in place, keeps their mode, leaves no temp files, and a second run changes nothing', async () => {
    const d = path.join(dir, 'inplace')
    mkdirSync(d)
    const f = path.join(d, 'a.yaml')
    writeFileSync(f, secret('a'))
    chmodSync(f, 0o640)
    expect((await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])).code).toBe(0)
    const once = readFileSync(f, 'utf8')
    expect(once).toMatch(/token: kseal:v2:/)
    expect(statSync(f).mode & 0o777).toBe(0o640)
    const mtime = statSync(f).mtimeMs
    expect((await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])).code).toBe(0)
    expect(readFileSync(f, 'utf8')).toBe(once)
    expect(statSync(f).mtimeMs).toBe(mtime) // unchanged files are not rewritten
    expect(readdirSync(d)).toEqual(['a.yaml'])
    expect((await kseal(['decrypt', '-i', '-k', TEAM_KEY, f])).code).toBe(0)
    expect(readFileSync(f, 'utf8')).toBe(secret('a'))
  })

  it('walks directories for *.yaml, *.yml and *.json, and joins several files on stdout as one stream', async () => {
    const d = path.join(dir, 'tree')
    mkdirSync(path.join(d, 'sub'), {recursive: true})
    writeFileSync(path.join(d, 'one.yaml'), secret('one'))
    writeFileSync(path.join(d, 'sub', 'two.yml'), secret('two'))
    writeFileSync(path.join(d, 'notes.txt'), 'not a manifest')
    const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`, d])
    expect(r.code).toBe(0)
    const docs = r.stdout.split(/^---\n/m)
    expect(docs).toHaveLength(2)
    expect(docs[0]).toContain('name: one')
    expect(docs[1]).toContain('name: two')
    const dec = await kseal(['decrypt', '-k', TEAM_KEY], {input: r.stdout})
    expect(dec.stdout).toBe(secret('one') + '---\n' + secret('two'))
  })

  it('an interrupted in-place run leaves every file either as it was or completely encrypted', async () => {
    const d = path.join(dir, 'interrupted')
    mkdirSync(d)
    const big = 'x'.repeat(300_000)
    const N = 150
    for (let i = 0; i < N; i++) writeFileSync(path.join(d, `s${i}.yaml`), secret(`s${i}`, big))
    const child = spawn(process.execPath, [BIN, 'encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, d], {
      env: cleanEnv() as NodeJS.ProcessEnv,
      cwd: ROOT,
    })
    const closed = new Promise((r) => child.on('close', r))
    // Kill it once it has started writing: some files are encrypted, others not yet.
    const written = () => readdirSync(d).some((n) => /^s\d+\.yaml$/.test(n) && readFileSync(path.join(d, n), 'utf8').includes('kseal:v2:'))
    for (let t = 0; t < 400 && !written(); t++) {
      await new Promise((r) => setTimeout(r, 20))
    }
    child.kill('SIGKILL')
    await closed
    let encrypted = 0
    for (const name of readdirSync(d)) {
      if (name.endsWith('.tmp')) continue // a write the kill cut short: its target is untouched
      const text = readFileSync(path.join(d, name), 'utf8')
      if (text === secret(name.replace('.yaml', ''), big)) continue
      encrypted++
      expect(text).toMatch(/token: kseal:v2:\S+\nkseal:\n/)
      expect(text).toMatch(/  mac: "[A-Za-z0-9+/=]+"\n$/)
    }
    expect(encrypted).toBeGreaterThan(0)
    expect(encrypted).toBeLessThan(N)
  })
})

describe('progress', () => {
  const run = (args: string) =>
    spawnSync('script', ['-qfec', `${process.execPath} ${BIN} ${args}`, '/dev/null'], {
      encoding: 'utf8',
      env: cleanEnv() as NodeJS.ProcessEnv,
      cwd: ROOT,
    })

  it('shows a progress line on a terminal over many files, and none with --quiet or without a terminal', async () => {
    const d = path.join(dir, 'progress')
    mkdirSync(d)
    for (let i = 0; i < 5; i++) writeFileSync(path.join(d, `p${i}.yaml`), secret(`p${i}`))
    const tty = run(`encrypt -r rsa:${TEAM_CERT} ${d}`)
    expect(tty.stdout).toMatch(/encrypting \d\/5 files/)
    const quiet = run(`encrypt -q -r rsa:${TEAM_CERT} ${d}`)
    expect(quiet.stdout).not.toMatch(/encrypting/)
    const piped = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`, d])
    expect(piped.stderr).toBe('')
  })
})

describe('inspect', () => {
  it('lists encrypted Secrets with scope, version, recipients and value counts — no key needed', async () => {
    const enc = await kseal(['encrypt', '--scope', 'namespace', '-r', `rsa:${TEAM_CERT}`], {
      input: secret('a') + '---\n' + 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n',
    })
    const f = path.join(dir, 'inspect.yaml')
    writeFileSync(f, enc.stdout)
    const json = await kseal(['inspect', '--json', f])
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toEqual([
      {
        file: f,
        document: 1,
        format: 'kseal',
        namespace: 'default',
        name: 'a',
        scope: 'namespace',
        version: 2,
        encryptedAs: {namespace: 'default', name: null, shown: 'namespace default'},
        recipientsAuthenticated: true,
        authenticated: 'every value, its place (field, key, and the namespace/name its scope binds) and the recipients',
        recipients: [{backend: 'rsa', kid: 'd5326737ee564566'}],
        values: 1,
        plaintext: 0,
      },
    ])
    const table = await kseal(['inspect', f])
    expect(table.stdout).toMatch(/FILE#DOC\s+SECRET\s+SCOPE\s+FORMAT\s+ENCRYPTED AS\s+VALUES\s+RECIPIENTS/)
    expect(table.stdout).toContain(`${f}#1`)
    expect(table.stdout).toContain('rsa:d5326737ee564566')
  })

  it('reports a file it cannot read as decrypt does: file, document, line; exit 2; nothing on stdout', async () => {
    const good = path.join(dir, 'inspect-good.yaml')
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: secret('g')})
    expect(enc.code).toBe(0)
    writeFileSync(good, enc.stdout)
    const broken = path.join(dir, 'inspect-broken.yaml')
    writeFileSync(broken, 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n data: [unclosed\n')
    const problem = `${broken}: document 1: malformed YAML at line 5, column 1: All mapping items must start at the same column`
    for (const args of [
      ['inspect', good, broken],
      ['inspect', '--json', good, broken],
    ]) {
      const r = await kseal(args)
      expect(r).toEqual({code: 2, stdout: '', stderr: `kseal: ${problem}\n`})
    }
    const decrypt = await kseal(['decrypt', broken])
    expect(decrypt).toEqual({code: 2, stdout: '', stderr: `kseal: ${problem}\n`})
    const stdin = await kseal(['inspect'], {input: 'a: [\n'})
    expect(stdin.code).toBe(2)
    expect(stdin.stderr).toMatch(/^kseal: \(stdin\): document 1: malformed YAML at line 2, column 1: [^\n]+\n$/)
  })
})
