/**
 * `kseal import`: SOPS, kubesec and Bitnami sealed-secrets files converted in place. Each source
 * format becomes kseal's (and decrypts back to the same plaintext), comments and layout stay,
 * `--dry-run` writes nothing, a file that fails is left byte for byte as it was while every other
 * file is converted, mixed streams convert only the foreign documents, and what cannot be converted
 * faithfully is refused with one line. PGP (kubesec) goes through the real gpg.
 */
import {chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments, parseDocument} from 'yaml'
import {cleanEnv, FIXTURES, INTEROP, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'
import {type GpgHome, gpgHome} from './support/gpg.js'
import {secretV3} from './support/kubesec.js'
import {flipAfter} from './support/sops-tamper.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const SOPS_SECRET = path.join(FIXTURES, 'sops', 'secret.sops.yaml')
const SOPS_PLAIN = readFileSync(path.join(FIXTURES, 'sops', 'secret.yaml'), 'utf8')
const BITNAMI = path.join(INTEROP, 'sealed-secrets')
const SOPS_AGE_FIXTURES = path.join(INTEROP, 'sops', 'humphd-sops-age', 'age-fixtures')

let tmp: string
let home: GpgHome | undefined
let bitnamiKey: string

const env = (extra: Record<string, string | undefined> = {}) =>
  cleanEnv({SOPS_AGE_KEY_FILE: path.join(FIXTURES, 'sops', 'age-key.txt'), ...(home ? {GNUPGHOME: home.dir} : {}), ...extra})

/** A fresh directory holding copies of `files` (name → source path or text). */
function workdir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmp, 'import-'))
  for (const [name, src] of Object.entries(files)) {
    if (src.startsWith('/')) copyFileSync(src, path.join(dir, name))
    else writeFileSync(path.join(dir, name), src)
  }
  return dir
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-import-'))
  bitnamiKey = path.join(tmp, 'sealed-secrets-key.yaml')
  copyFileSync(path.join(BITNAMI, 'sealed-secrets-key.yaml'), bitnamiKey)
  chmodSync(bitnamiKey, 0o600)
  if (gpgTool.present) home = gpgHome()
})

afterAll(() => home?.close())

describe('SOPS files', () => {
  it('become kseal v2 Secrets in place: values replaced where they stood, the sops block by the envelope, comments kept', async () => {
    const dir = workdir({'db.yaml': SOPS_SECRET})
    const file = path.join(dir, 'db.yaml')
    const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, dir], {env: env()})
    expect([r.stderr, r.code]).toEqual(['', 0])
    expect(r.stdout).toBe(`${file}#1 prod/db: sops(age) → kseal v2 (rsa:${TEAM_KID})\n`)
    const text = readFileSync(file, 'utf8')
    expect(text).not.toMatch(/ENC\[|^sops:/m)
    expect(text).toMatch(/^kseal:$/m)
    // Every line outside the values and the envelope is as sops's file (and the plaintext) had it.
    const kept = (t: string) => t.split('\n').filter((l) => !/^\s+(password|empty|username|url|note): /.test(l) && l.trim() !== '')
    expect(kept(text).slice(0, kept(SOPS_PLAIN).length)).toEqual(kept(SOPS_PLAIN))
    const d = await kseal(['decrypt', '-k', TEAM_KEY, file], {env: cleanEnv()})
    expect([d.code, d.stdout]).toEqual([0, SOPS_PLAIN])
  })

  it('takes recipients from .kseal.yaml; --dry-run lists and writes nothing', async () => {
    const dir = workdir({'db.yaml': SOPS_SECRET, '.kseal.yaml': `creation_rules:\n  - recipients: [rsa:${TEAM_CERT}]\n`})
    const file = path.join(dir, 'db.yaml')
    const before = readFileSync(file, 'utf8')
    const dry = await kseal(['import', '--dry-run', dir], {env: env()})
    expect([dry.code, dry.stdout]).toEqual([0, `${file}#1 prod/db: sops(age) → kseal v2 (rsa:${TEAM_KID})\n`])
    expect(dry.stderr).toMatch(/dry run: nothing was written/)
    expect(readFileSync(file, 'utf8')).toBe(before)
    const r = await kseal(['import', dir], {env: env()})
    expect(r.code).toBe(0)
    expect((await kseal(['decrypt', '-k', TEAM_KEY, file], {env: cleanEnv()})).stdout).toBe(SOPS_PLAIN)
  })

  it('a mixed stream: only the SOPS document is converted, every other document byte for byte as it was', async () => {
    const configMap = '# kept\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  on: yes\n'
    const plain = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: k\n  namespace: n\nstringData:\n  token: t\n'
    const kseals = (await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: plain})).stdout
    const dir = workdir({'all.yaml': [configMap, readFileSync(SOPS_SECRET, 'utf8'), kseals].join('---\n')})
    const file = path.join(dir, 'all.yaml')
    const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, file], {env: env()})
    expect([r.stderr, r.code, r.stdout]).toEqual(['', 0, `${file}#2 prod/db: sops(age) → kseal v2 (rsa:${TEAM_KID})\n`])
    const docs = readFileSync(file, 'utf8').split('---\n')
    expect(docs[0]).toBe(configMap)
    expect(docs[2]).toBe(kseals)
    const d = await kseal(['decrypt', '-k', TEAM_KEY, '-k', OTHER_KEY, file], {env: cleanEnv()})
    expect(d.stdout).toBe([configMap, SOPS_PLAIN, plain].join('---\n'))
  })

  it('a file that fails is left byte for byte as it was; every other file is converted; the exit code is the worst', async () => {
    const text = readFileSync(SOPS_SECRET, 'utf8')
    const dir = workdir({
      'a-good.yaml': SOPS_SECRET,
      'b-tampered.yaml': flipAfter(text, /password: ENC\[AES256_GCM,data:/),
      'c-nokey.yaml': SOPS_SECRET,
    })
    const tampered = readFileSync(path.join(dir, 'b-tampered.yaml'), 'utf8')
    const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, path.join(dir, 'a-good.yaml'), path.join(dir, 'b-tampered.yaml')], {
      env: env(),
    })
    expect(r.code).toBe(3)
    expect(r.stdout).toBe(`${path.join(dir, 'a-good.yaml')}#1 prod/db: sops(age) → kseal v2 (rsa:${TEAM_KID})\n`)
    expect(r.stderr).toMatch(/b-tampered\.yaml: document 1 \(Secret prod\/db\).*(MAC mismatch|altered)/)
    expect(readFileSync(path.join(dir, 'b-tampered.yaml'), 'utf8')).toBe(tampered)
    expect(readFileSync(path.join(dir, 'a-good.yaml'), 'utf8')).toMatch(/^kseal:$/m)
    // Without the key: exit 3, the file untouched.
    const none = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, path.join(dir, 'c-nokey.yaml')], {env: cleanEnv()})
    expect([none.code, none.stdout]).toEqual([3, ''])
    expect(none.stderr).toMatch(/no key for this SOPS file/)
    expect(readFileSync(path.join(dir, 'c-nokey.yaml'), 'utf8')).toBe(text)
  })

  it('refuses what it cannot convert faithfully, with one line (exit 2): documents that are not Secrets, dotenv, no recipients', async () => {
    const key = path.join(tmp, 'sops-age-key.txt')
    copyFileSync(path.join(SOPS_AGE_FIXTURES, 'key.txt'), key)
    chmodSync(key, 0o600)
    const dir = workdir({
      'config.yaml': path.join(SOPS_AGE_FIXTURES, 'secret.enc.yaml'),
      'app.env': path.join(SOPS_AGE_FIXTURES, 'secret.enc.env'),
    })
    const before = readFileSync(path.join(dir, 'config.yaml'), 'utf8')
    const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, path.join(dir, 'config.yaml'), path.join(dir, 'app.env')], {
      env: env({SOPS_AGE_KEY_FILE: key}),
    })
    expect([r.code, r.stdout]).toEqual([2, ''])
    expect(r.stderr).toMatch(/config\.yaml: document 1: is a SOPS document but not a v1 Secret/)
    expect(r.stderr).toMatch(/app\.env: a SOPS dotenv file is not a Kubernetes manifest/)
    expect(readFileSync(path.join(dir, 'config.yaml'), 'utf8')).toBe(before)
    // Shamir key groups: kseal holds one data key per Secret, not shares of it.
    const shamir = parseDocument(readFileSync(SOPS_SECRET, 'utf8'))
    const age = shamir.getIn(['sops', 'age'])
    shamir.deleteIn(['sops', 'age'])
    shamir.setIn(['sops', 'key_groups'], shamir.createNode([{age}, {age}]))
    shamir.setIn(['sops', 'shamir_threshold'], 2)
    const shamirFile = path.join(dir, 'shamir.yaml')
    writeFileSync(shamirFile, shamir.toString())
    const sh = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, shamirFile], {env: env()})
    expect([sh.code, sh.stdout]).toEqual([2, ''])
    expect(sh.stderr).toMatch(
      /shamir\.yaml: document 1 \(Secret prod\/db\): .*2 key groups \(Shamir secret sharing\), which kseal does not support/,
    )
    expect(readFileSync(shamirFile, 'utf8')).toBe(shamir.toString())
    // No -r and no .kseal.yaml: a usage error, nothing written.
    const sopsDir = workdir({'db.yaml': SOPS_SECRET})
    const u = await kseal(['import', sopsDir], {env: env()})
    expect([u.code, u.stdout]).toEqual([2, ''])
    expect(u.stderr).toMatch(/no recipients/)
    // stdin: import converts files in place.
    expect((await kseal(['import', '-'], {env: env(), input: 'x'})).code).toBe(2)
  })

  gpgTool.it('refuses encrypted comments: kseal would have to write them in plaintext', async () => {
    const dir = workdir({'c.yaml': path.join(INTEROP, 'sops', 'getsops-sops', 'pgp-fixtures', 'comments.enc.yaml')})
    const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, dir], {env: env()})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/holds 2 encrypted comments, which kseal's format would keep in plaintext/)
  })
})

gpgTool.it('kubesec Secrets become kseal v2 Secrets (through the real gpg)', async () => {
  const dir = workdir({'db.yaml': path.join(FIXTURES, 'kubesec', 'secret-v3.kubesec.yaml')})
  const file = path.join(dir, 'db.yaml')
  const r = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, file], {env: env()})
  expect([r.stderr, r.code, r.stdout]).toEqual(['', 0, `${file}#1 prod/db: kubesec v3(pgp) → kseal v2 (rsa:${TEAM_KID})\n`])
  const text = readFileSync(file, 'utf8')
  expect(text).not.toContain('# kubesec:')
  const d = await kseal(['decrypt', '-k', TEAM_KEY, file], {env: cleanEnv()})
  expect(parse(d.stdout, {version: '1.1'})).toEqual(secretV3)
})

describe('Bitnami SealedSecrets', () => {
  const scopes = ['strict', 'namespace-wide', 'cluster-wide']
  const expected = (s: string) => parse(readFileSync(path.join(BITNAMI, `expected-secret-${s}.yaml`), 'utf8'))
  const copies = () => workdir(Object.fromEntries(scopes.map((s) => [`${s}.yaml`, path.join(BITNAMI, `sealedsecret-${s}.yaml`)])))

  it("become kseal SealedSecrets sealed to the kseal controller's certificate (--cert), with the Bitnami key (--key)", async () => {
    const dir = copies()
    const r = await kseal(['import', '--key', bitnamiKey, '--cert', OTHER_CERT, dir], {env: cleanEnv()})
    expect([r.stderr, r.code]).toEqual(['', 0])
    expect(r.stdout.trim().split('\n')).toEqual(
      [...scopes]
        .sort()
        .map((s) =>
          expect.stringMatching(new RegExp(`${s}\\.yaml#1 interop-ns/interop-${s.split('-')[0]}.*: bitnami → kseal SealedSecret \\(rsa:`)),
        ),
    )
    for (const s of scopes) {
      const doc = parse(readFileSync(path.join(dir, `${s}.yaml`), 'utf8'))
      expect(doc.apiVersion).toBe('kseal.dev/v1')
      const u = await kseal(['unseal', '--key', OTHER_KEY, path.join(dir, `${s}.yaml`)], {env: cleanEnv()})
      expect(u.code).toBe(0)
      expect(parse(u.stdout)).toEqual(expected(s))
    }
  })

  it('or encrypted Secrets for -r; without --key they are refused and left as they were', async () => {
    const dir = copies()
    const file = path.join(dir, 'strict.yaml')
    const before = readFileSync(file, 'utf8')
    const none = await kseal(['import', '-r', `rsa:${TEAM_CERT}`, file], {env: cleanEnv()})
    expect(none.code).toBe(3)
    expect(none.stderr).toMatch(/pass the sealed-secrets controller's private key with --key/)
    expect(readFileSync(file, 'utf8')).toBe(before)
    const r = await kseal(['import', '--key', bitnamiKey, '-r', `rsa:${TEAM_CERT}`, file], {env: cleanEnv()})
    expect([r.stderr, r.code, r.stdout]).toEqual(['', 0, `${file}#1 interop-ns/interop-strict: bitnami → kseal v2 (rsa:${TEAM_KID})\n`])
    const d = await kseal(['decrypt', '-k', TEAM_KEY, file], {env: cleanEnv()})
    expect(parseAllDocuments(d.stdout).map((x) => x.toJS())).toEqual([expected('strict')])
  })
})
