/**
 * SOPS and kubesec files through the CLI: every SOPS file in ../shared/interop (written by the real
 * sops) and every kubesec fixture opens to its expected plaintext through `decrypt` (files and
 * stdin), `textconv` and the KRM function, and is listed by `inspect`; every tampered variant is
 * refused with exit 3 and nothing on stdout; a stream mixing kseal, SOPS, kubesec and plain
 * documents decrypts as a whole; `check` knows SOPS and kubesec Secrets are encrypted and still
 * flags a value a SOPS file's rules leave in plaintext. PGP goes through the real gpg.
 */
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import {Backends} from '../keys/index.js'
import {encryptSops, SopsMasterKeys} from '../src/formats/sops/index.js'
import {cleanEnv, FIXTURES, INTEROP, kseal, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {type GpgHome, gpgHome, SOPS_KEY_1, SOPS_KEY_2} from './support/gpg.js'
import {secretV3, secretV4} from './support/kubesec.js'
import {flipAfter, sopsTamperings} from './support/sops-tamper.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const SOPS = path.join(INTEROP, 'sops')
const AGE_FILES = ['humphd-sops-age/age-fixtures/secret.enc.yaml', 'humphd-sops-age/age-fixtures/secret.enc.json']
const PGP_FILES = ['format.enc.yaml', 'format.enc.json', 'multiple_keys.yaml', 'comments.enc.yaml', 'example.yaml', 'example.json'].map(
  (f) => `getsops-sops/pgp-fixtures/${f}`,
)
const KUBESEC = path.join(FIXTURES, 'kubesec')
const SECRET_SOPS = path.join(FIXTURES, 'sops', 'secret.sops.yaml')
const SECRET_PLAIN = path.join(FIXTURES, 'sops', 'secret.yaml')

const read = (rel: string) => readFileSync(path.join(SOPS, rel), 'utf8')
const expected = (rel: string) => JSON.parse(readFileSync(path.join(SOPS, 'expected', `${path.basename(rel)}.plain.json`), 'utf8'))

let tmp: string
let ageKey: string
let home: GpgHome | undefined

/** A clean environment with the age keys sops's places hold, and the test gpg home. */
function env(extra: Record<string, string | undefined> = {}) {
  return cleanEnv({SOPS_AGE_KEY_FILE: ageKey, ...(home ? {GNUPGHOME: home.dir} : {}), ...extra})
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-sops-cli-'))
  // sops's age key file, and the one the frozen Secret fixture was written for, in one file.
  ageKey = path.join(tmp, 'age-keys.txt')
  writeFileSync(
    ageKey,
    read('humphd-sops-age/age-fixtures/key.txt') + '\n' + readFileSync(path.join(FIXTURES, 'sops', 'age-key.txt'), 'utf8'),
    {mode: 0o600},
  )
  if (gpgTool.present) home = gpgHome()
})

afterAll(() => home?.close())

/** A ResourceList holding each text as one item, at the indentation kustomize writes. */
function resourceList(texts: string[]): string {
  const items = texts.map((t) => '  - ' + t.replace(/\n(?=.)/g, '\n    ').replace(/\n*$/, '\n')).join('')
  return `apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n${items}`
}

describe('every SOPS file sops wrote opens through the CLI', () => {
  const opens = (files: string[]) => {
    it.each(files)('decrypt %s (a file, and stdin)', async (rel) => {
      const r = await kseal(['decrypt', path.join(SOPS, rel)], {env: env()})
      expect([r.stderr, r.code]).toEqual(['', 0])
      expect(r.stdout).not.toMatch(/ENC\[|^sops:|"sops"/m)
      expect(parse(r.stdout)).toEqual(expected(rel))
      const piped = await kseal(['decrypt'], {env: env(), input: read(rel)})
      expect([piped.code, piped.stdout]).toEqual([0, r.stdout])
    })

    it.each(files)('textconv %s', async (rel) => {
      const r = await kseal(['textconv', path.join(SOPS, rel)], {env: env()})
      expect(r.code).toBe(0)
      expect(parse(r.stdout)).toEqual(expected(rel))
    })

    it('the KRM function decrypts them as items of a ResourceList', async () => {
      const r = await kseal(['krm'], {env: env(), input: resourceList(files.map(read))})
      expect([r.stderr, r.code]).toEqual(['', 0])
      expect((parse(r.stdout) as {items: unknown[]}).items).toEqual(files.map(expected))
    })

    it('inspect lists them without a key: format, recipients, what is authenticated', async () => {
      const r = await kseal(['inspect', '--json', ...files.map((f) => path.join(SOPS, f))], {env: cleanEnv()})
      expect(r.code).toBe(0)
      const infos = JSON.parse(r.stdout) as {format: string; version: string; recipients: {backend: string}[]; authenticated: string}[]
      expect(infos).toHaveLength(files.length)
      for (const i of infos) {
        expect(i).toMatchObject({format: 'sops', recipientsAuthenticated: false, version: expect.stringMatching(/^3\.\d+\.\d+$/)})
        expect(i.authenticated).toMatch(/not the recipients/)
        expect(i.recipients.length).toBeGreaterThan(0)
      }
    })
  }
  describe('age (sops-age fixtures), with the key in SOPS_AGE_KEY_FILE', () => opens(AGE_FILES))
  gpgTool.describe('PGP (sops functional-test fixtures), through the real gpg', () => opens(PGP_FILES))

  it('without the key: exit 3, naming every recipient, nothing on stdout', async () => {
    const r = await kseal(['decrypt', path.join(SOPS, AGE_FILES[0])], {env: cleanEnv()})
    expect([r.code, r.stdout]).toEqual([3, ''])
    expect(r.stderr).toMatch(
      /no key for this SOPS file: it is encrypted for age:age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr/,
    )
    // textconv never fails a diff: the file is shown as it is.
    const t = await kseal(['textconv', path.join(SOPS, AGE_FILES[0])], {env: cleanEnv()})
    expect([t.code, t.stdout]).toEqual([0, read(AGE_FILES[0])])
  })

  it("refuses sops's dotenv files with one line (exit 2)", async () => {
    const r = await kseal(['decrypt', path.join(SOPS, 'humphd-sops-age/age-fixtures/secret.enc.env')], {env: env()})
    expect([r.code, r.stdout]).toEqual([2, ''])
    expect(r.stderr).toMatch(/secret\.enc\.env: a SOPS dotenv file is not a Kubernetes manifest/)
  })
})

describe('every tampered SOPS file is refused through the CLI (exit 3, nothing written)', () => {
  const tamperings = sopsTamperings(read)
  const refused = async (rel: string) => {
    const dir = mkdtempSync(path.join(tmp, 'tampered-'))
    const ext = path.extname(rel)
    const files = tamperings.map(([name, make]) => {
      const f = path.join(dir, `${name.replace(/\W+/g, '-')}${ext}`)
      const text = make(rel)
      expect(text).not.toBe(read(rel))
      writeFileSync(f, text)
      return f
    })
    const r = await kseal(['decrypt', ...files], {env: env()})
    expect([r.code, r.stdout]).toEqual([3, ''])
    // One line per file, each refused with its own reason.
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(files.length)
    files.forEach((f, i) => {
      const line = lines.find((l) => l.startsWith(`kseal: ${f}`))
      expect(line).toMatch(tamperings[i][2] === 'ERR_DECRYPT' ? /cannot decrypt the data key/ : /MAC mismatch|altered|cannot decrypt/)
    })
    // In place: every file left exactly as it was.
    const before = files.map((f) => readFileSync(f, 'utf8'))
    const inPlace = await kseal(['decrypt', '-i', ...files], {env: env()})
    expect(inPlace.code).toBe(3)
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(before)
    // The KRM function: error results, exit 1, and no item decrypted.
    const krm = await kseal(['krm'], {env: env(), input: resourceList([read(rel), tamperings[0][1](rel)])})
    expect(krm.code).not.toBe(0)
    expect(krm.stdout).not.toContain('this is a secret')
    expect(krm.stdout).toMatch(/severity: error/)
  }
  it.each(AGE_FILES)('%s', refused)
  gpgTool.describe('PGP fixtures', () => {
    it.each(PGP_FILES)('%s', refused)
  })
})

gpgTool.describe('kubesec files, through the real gpg', () => {
  const V3 = path.join(KUBESEC, 'secret-v3.kubesec.yaml')
  const V4 = path.join(KUBESEC, 'secret-v4.kubesec.yaml')

  it('decrypt, textconv and the KRM function open them to their plaintext; inspect lists them', async () => {
    const r = await kseal(['decrypt', V3, V4], {env: env()})
    expect([r.stderr, r.code]).toEqual(['', 0])
    expect(parseAllDocuments(r.stdout).map((d) => d.toJS({}))).toEqual([secretV3, secretV4])
    expect(r.stdout).not.toContain('# kubesec:')
    const t = await kseal(['textconv', V4], {env: env()})
    expect(parse(t.stdout, {version: '1.1'})).toEqual(secretV4)
    const krm = await kseal(['krm'], {env: env(), input: resourceList([readFileSync(V3, 'utf8'), readFileSync(V4, 'utf8')])})
    expect([krm.stderr, krm.code]).toEqual(['', 0])
    expect((parse(krm.stdout) as {items: unknown[]}).items).toEqual([secretV3, secretV4])
    const i = await kseal(['inspect', '--json', V4], {env: cleanEnv()})
    expect(JSON.parse(i.stdout)).toEqual([
      expect.objectContaining({
        format: 'kubesec',
        version: 4,
        namespace: 'web',
        name: 'app',
        values: 3,
        recipients: [
          {backend: 'pgp', kid: SOPS_KEY_1},
          {backend: 'pgp', kid: SOPS_KEY_2},
        ],
        authenticated: expect.stringMatching(/not the Secret's metadata/),
      }),
    ])
  })

  it('a tampered kubesec Secret is refused (exit 3): a value, the MAC, a value moved to another key', async () => {
    const text = readFileSync(V3, 'utf8')
    const variants = {
      value: flipAfter(text, /password: /),
      mac: flipAfter(text, /# kubesec:mac:/),
      moved: text.replace('password:', 'passwd:'),
    }
    for (const [name, variant] of Object.entries(variants)) {
      expect(variant).not.toBe(text)
      const r = await kseal(['decrypt'], {env: env(), input: variant})
      expect([name, r.code, r.stdout]).toEqual([name, 3, ''])
    }
  })
})

describe('a stream mixing kseal, SOPS, kubesec and plain documents', () => {
  gpgTool.it('decrypts every encrypted document; every other byte passes through', async () => {
    const plainSecret = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: k\n  namespace: n\nstringData:\n  token: kseal-value\n'
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {env: cleanEnv(), input: plainSecret})
    expect(enc.code).toBe(0)
    const configMap = '# a plain document, as written\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  on: yes\n'
    const stream = [
      enc.stdout,
      readFileSync(SECRET_SOPS, 'utf8'),
      configMap,
      readFileSync(path.join(KUBESEC, 'secret-v3.kubesec.yaml'), 'utf8'),
    ]
    const r = await kseal(['decrypt', '-k', TEAM_KEY], {env: env(), input: stream.join('---\n')})
    expect([r.stderr, r.code]).toEqual(['', 0])
    const docs = r.stdout.split('---\n')
    expect(docs).toHaveLength(4)
    expect(docs[0]).toBe(plainSecret)
    expect(docs[1]).toBe(readFileSync(SECRET_PLAIN, 'utf8'))
    expect(docs[2]).toBe(configMap)
    expect(parse(docs[3], {version: '1.1'})).toEqual(secretV3)
    // A tampered SOPS document stops the whole stream: nothing reaches a pipeline.
    const bad = [stream[0], flipAfter(stream[1], /password: ENC\[AES256_GCM,data:/), configMap].join('---\n')
    const refused = await kseal(['decrypt', '-k', TEAM_KEY], {env: env(), input: bad})
    expect([refused.code, refused.stdout]).toEqual([3, ''])
    expect(refused.stderr).toMatch(/document 2.*prod\/db/)
  })
})

describe('check knows SOPS and kubesec Secrets', () => {
  it('a SOPS Secret is encrypted; one whose encrypted_regex leaves data out is flagged', async () => {
    const dir = mkdtempSync(path.join(tmp, 'check-'))
    mkdirSync(dir, {recursive: true})
    copyFileSync(SECRET_SOPS, path.join(dir, 'sops.yaml'))
    copyFileSync(path.join(KUBESEC, 'secret-v4.kubesec.yaml'), path.join(dir, 'kubesec.yaml'))
    const ok = await kseal(['check', dir], {env: cleanEnv()})
    expect([ok.stdout, ok.code]).toEqual(['', 0])

    // A SOPS file whose rules encrypt only stringData: its data values are plaintext.
    const b = new Backends({env: cleanEnv(), cwd: tmp, now: () => new Date()})
    const keys = new SopsMasterKeys(b)
    const dataKey = Buffer.alloc(32, 7)
    const entries = await keys.wrap(
      [{kind: 'age', recipient: 'age1eltpgg00muf55rluq5x63rfcathgtjpyh22vyuvq3zmzhr3ntevsgtsmgp'}],
      dataKey,
      new Date(),
    )
    await keys.close()
    await b.close()
    const partial = encryptSops(readFileSync(SECRET_PLAIN, 'utf8'), {dataKey, entries, rules: {encryptedRegex: '^stringData$'}})
    writeFileSync(path.join(dir, 'partial.yaml'), partial)
    const found = await kseal(['check', dir], {env: cleanEnv()})
    expect(found.code).toBe(1)
    expect(found.stdout).toBe(`${path.join(dir, 'partial.yaml')}: document 1 (Secret prod/db): plaintext data.password\n`)
    // It still decrypts (the file is what sops would write), with the plaintext as it was.
    const r = await kseal(['decrypt', path.join(dir, 'partial.yaml')], {env: env()})
    expect([r.code, r.stdout]).toEqual([0, readFileSync(SECRET_PLAIN, 'utf8')])
  })
})
