/**
 * `kseal encrypt --format sops` (and `format: sops` in .kseal.yaml) through the CLI, checked by
 * implementations that are not kseal's: `sops-age` decrypts the values, the real `age` and `gpg`
 * open the data-key entries, and the test-only MAC check (test/support/sops-mac.ts) verifies the
 * MAC with what they gave. Then kseal's own commands on those files: decrypt, check, edit (unchanged
 * values keep their ciphertext: the diff is the changed value, lastmodified and the MAC) and rotate
 * (re-wrap, --data-key, and the trust rule for entries SOPS does not authenticate).
 */
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {generateIdentity, identityToRecipient} from 'age-encryption'
import {decryptSops} from 'sops-age'
import {parse} from 'yaml'
import {BIN, cleanEnv, FIXTURES, kseal, ROOT, TEAM_CERT} from './support/cli.js'
import {type GpgHome, gpgHome, SOPS_KEY_1} from './support/gpg.js'
import {checkSopsMac} from './support/sops-mac.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const ageTool = tool('age')
const AGE_KEY = path.join(FIXTURES, 'sops', 'age-key.txt')
const AGE_RECIPIENT = 'age1eltpgg00muf55rluq5x63rfcathgtjpyh22vyuvq3zmzhr3ntevsgtsmgp'
const AGE_SECRET = readFileSync(AGE_KEY, 'utf8')
  .split('\n')
  .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
const PLAIN = readFileSync(path.join(FIXTURES, 'sops', 'secret.yaml'), 'utf8')

let tmp: string
let home: GpgHome | undefined
/** A second age key, made by the library, in its own key file. */
let other: {secret: string; recipient: string; file: string}

const env = (extra: Record<string, string | undefined> = {}) =>
  cleanEnv({SOPS_AGE_KEY_FILE: AGE_KEY, ...(home ? {GNUPGHOME: home.dir} : {}), ...extra})

const fresh = (name: string, text: string) => {
  const dir = mkdtempSync(path.join(tmp, 'case-'))
  const f = path.join(dir, name)
  writeFileSync(f, text)
  return f
}

/** The data key of a SOPS file, opened by the real age from its entry for `recipient`. */
const ageDataKey = (text: string, recipient: string, key: string) =>
  execFileSync('age', ['-d', '-i', key], {
    input: (parse(text).sops.age as {recipient: string; enc: string}[]).find((a) => a.recipient === recipient)!.enc,
  })

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-sops-format-'))
  const secret = await generateIdentity()
  other = {secret, recipient: await identityToRecipient(secret), file: path.join(tmp, 'other-age.txt')}
  writeFileSync(other.file, secret + '\n', {mode: 0o600})
  if (gpgTool.present) home = gpgHome()
})

afterAll(() => home?.close())

describe('encrypt --format sops', () => {
  it("writes what sops-age (not kseal) decrypts to the Secret's values; kseal decrypt gives back every byte", async () => {
    const r = await kseal(['encrypt', '--format', 'sops', '-r', `age:${AGE_RECIPIENT}`], {env: cleanEnv(), input: PLAIN})
    expect([r.stderr, r.code]).toEqual(['', 0])
    const meta = parse(r.stdout).sops
    expect(meta).toMatchObject({encrypted_regex: '^(data|stringData)$', version: '3.13.1', age: [{recipient: AGE_RECIPIENT}]})
    expect(meta.lastmodified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    expect(await decryptSops(r.stdout, {secretKey: AGE_SECRET, fileType: 'yaml'})).toEqual(parse(PLAIN))
    // Comments and layout are kept; only values and the sops block are new.
    expect(r.stdout).toContain('    app: db # only data and stringData are encrypted\n')
    const d = await kseal(['decrypt'], {env: env(), input: r.stdout})
    expect([d.code, d.stdout]).toEqual([0, PLAIN])
    // check knows it is encrypted.
    const f = fresh('db.yaml', r.stdout)
    expect((await kseal(['check', f], {env: cleanEnv()})).code).toBe(0)
    // Running it again changes nothing; --scope does not apply to SOPS.
    expect((await kseal(['encrypt', '--format', 'sops', '-r', `age:${AGE_RECIPIENT}`], {env: cleanEnv(), input: r.stdout})).stdout).toBe(
      r.stdout,
    )
    const scoped = await kseal(['encrypt', '--format', 'sops', '--scope', 'namespace', '-r', `age:${AGE_RECIPIENT}`], {input: PLAIN})
    expect(scoped.code).toBe(2)
    // kseal's own format leaves a SOPS Secret alone (its ENC[…] values are not plaintext to encrypt again).
    expect((await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {env: cleanEnv(), input: r.stdout})).stdout).toBe(r.stdout)
    // An RSA recipient cannot be a SOPS key entry.
    const rsa = await kseal(['encrypt', '--format', 'sops', '-r', `rsa:${TEAM_CERT}`], {env: cleanEnv(), input: PLAIN})
    expect(rsa.code).toBe(2)
    expect(rsa.stderr).toMatch(/SOPS files can be encrypted for age, pgp and awskms recipients, not rsa/)
  })

  ageTool.it('the real age opens the data-key entry, and the independent MAC check verifies the file with it', async () => {
    const r = await kseal(['encrypt', '--format', 'sops', '-r', `age:${AGE_RECIPIENT}`, '-r', `age:${other.recipient}`], {
      env: cleanEnv(),
      input: PLAIN,
    })
    for (const [recipient, key] of [
      [AGE_RECIPIENT, AGE_KEY],
      [other.recipient, other.file],
    ]) {
      const dataKey = ageDataKey(r.stdout, recipient, key)
      const check = checkSopsMac(r.stdout, dataKey)
      expect(check.ok).toBe(true)
      expect(check.plain).toEqual(parse(PLAIN))
    }
  })

  gpgTool.it('for a PGP key: the real gpg opens its entry, and the MAC verifies with what it gives', async () => {
    const r = await kseal(['encrypt', '--format', 'sops', '-r', `pgp:${SOPS_KEY_1}`], {env: env(), input: PLAIN})
    expect([r.stderr, r.code]).toEqual(['', 0])
    const entry = parse(r.stdout).sops.pgp[0]
    expect(entry.fp).toBe(SOPS_KEY_1)
    const dataKey = home!.gpg(['--decrypt'], entry.enc)
    expect(checkSopsMac(r.stdout, dataKey)).toMatchObject({ok: true, plain: parse(PLAIN)})
  })

  it('follows format: sops in .kseal.yaml, per rule: one file can hold both formats', async () => {
    const dir = mkdtempSync(path.join(tmp, 'rules-'))
    writeFileSync(
      path.join(dir, '.kseal.yaml'),
      `creation_rules:\n  - namespace_regex: ^prod$\n    format: sops\n    recipients: [age:${AGE_RECIPIENT}]\n  - recipients: [rsa:${TEAM_CERT}]\n`,
    )
    const dev = PLAIN.replace('namespace: prod', 'namespace: dev')
    writeFileSync(path.join(dir, 'all.yaml'), `${PLAIN}---\n${dev}`)
    const r = await kseal(['encrypt', '-i', dir], {env: cleanEnv()})
    expect([r.stderr, r.code]).toEqual(['', 0])
    const [prod, devOut] = readFileSync(path.join(dir, 'all.yaml'), 'utf8').split('---\n')
    expect(prod).toMatch(/^sops:$/m)
    expect(devOut).toMatch(/^kseal:$/m)
    expect(devOut).not.toMatch(/^sops:$/m)
    expect(await decryptSops(prod, {secretKey: AGE_SECRET, fileType: 'yaml'})).toEqual(parse(PLAIN))
    // --format overrides the rule's format (the recipients stay the rule's).
    writeFileSync(path.join(dir, 'one.yaml'), PLAIN)
    expect((await kseal(['encrypt', '-i', '--format', 'kseal', path.join(dir, 'one.yaml')], {env: cleanEnv()})).code).toBe(0)
    expect(readFileSync(path.join(dir, 'one.yaml'), 'utf8')).toMatch(/^kseal:$/m)
    writeFileSync(path.join(dir, 'one.yaml'), dev)
    writeFileSync(path.join(dir, '.kseal.yaml'), 'creation_rules:\n  - format: yaml\n    recipients: [age:x]\n')
    const bad = await kseal(['encrypt', path.join(dir, 'one.yaml')], {env: cleanEnv()})
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/creation_rules\[0\]\.format: expected one of kseal, sops/)
  })
})

ageTool.describe("the Flux recipe in docs/gitops.md (Flux's kustomize-controller is not run here)", () => {
  it("its commands make a SOPS file that sops-age, the real age and the independent MAC check open with Flux's key", async () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'gitops.md'), 'utf8')
    const section = doc.slice(doc.indexOf('### Flux with SOPS files from `kseal encrypt --format sops`'), doc.indexOf('## See also'))
    const blocks = [...section.matchAll(/```sh test\n([\s\S]*?)```/g)].map((m) => m[1].replace(/^#>.*\n/gm, ''))
    expect(blocks.length).toBeGreaterThanOrEqual(2)
    const dir = mkdtempSync(path.join(tmp, 'flux-'))
    const bin = path.join(dir, '.bin')
    mkdirSync(bin)
    writeFileSync(path.join(bin, 'kseal'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, {mode: 0o755})
    const e = {...cleanEnv({HOME: dir}), PATH: `${bin}:${process.env.PATH}`}
    execFileSync('bash', ['-eo', 'pipefail', '-c', blocks.join('\n')], {cwd: dir, env: e as NodeJS.ProcessEnv, stdio: 'pipe'})
    const file = readFileSync(path.join(dir, 'clusters', 'prod', 'db.secret.yaml'), 'utf8')
    const fluxKey = readFileSync(path.join(dir, 'flux.agekey'), 'utf8')
    const secretKey = fluxKey.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
    const plain = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'db', namespace: 'prod', creationTimestamp: null},
      data: {password: 'czNjcjN0'},
    }
    expect(await decryptSops(file, {secretKey, fileType: 'yaml'})).toEqual(plain)
    const recipient = execFileSync('age-keygen', ['-y', path.join(dir, 'flux.agekey')])
      .toString()
      .trim()
    expect(checkSopsMac(file, ageDataKey(file, recipient, path.join(dir, 'flux.agekey')))).toMatchObject({ok: true, plain})
  })
})

describe('edit on a SOPS file', () => {
  it('keeps the ciphertext of unchanged values: the byte diff is the changed value, lastmodified and the MAC', async () => {
    const enc = (await kseal(['encrypt', '--format', 'sops', '-r', `age:${AGE_RECIPIENT}`], {env: cleanEnv(), input: PLAIN})).stdout
    const f = fresh('db.yaml', enc)
    const editor = path.join(path.dirname(f), 'editor.sh')
    writeFileSync(editor, `#!/bin/sh\nsed -i 's/"admin"/"root"/' "$1"\n`, {mode: 0o700})
    // lastmodified has one-second resolution: make sure it moves.
    await new Promise((r) => setTimeout(r, 1100))
    const r = await kseal(['edit', f], {env: env({EDITOR: editor})})
    expect([r.stderr, r.code]).toEqual([`kseal: ${f}: saved, encrypted\n`, 0])
    const after = readFileSync(f, 'utf8')
    const a = enc.split('\n')
    const b = after.split('\n')
    expect(b).toHaveLength(a.length)
    const changed = a.map((l, i) => (l === b[i] ? null : l.trim().split(':')[0])).filter((x) => x !== null)
    expect(changed).toEqual(['username', 'lastmodified', 'mac'])
    expect(await decryptSops(after, {secretKey: AGE_SECRET, fileType: 'yaml'})).toEqual(parse(PLAIN.replace('"admin"', '"root"')))
  })
})

describe('rotate on SOPS files', () => {
  const encrypted = async (...recipients: string[]) =>
    (await kseal(['encrypt', '--format', 'sops', ...recipients.flatMap((r) => ['-r', `age:${r}`])], {env: cleanEnv(), input: PLAIN})).stdout
  const encOf = (t: string) => t.split('\n').filter((l) => l.includes('ENC[') && !l.includes('mac:'))

  it('re-wraps for an added recipient and drops a removed one; values keep their ciphertext', async () => {
    const f = fresh('db.yaml', await encrypted(AGE_RECIPIENT))
    const before = readFileSync(f, 'utf8')
    const r = await kseal(['rotate', '-i', '--add-recipient', `age:${other.recipient}`, f], {env: env()})
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`rotated ${f}: document 1 (Secret prod/db): +age:${other.recipient}`)
    const added = readFileSync(f, 'utf8')
    expect(encOf(added)).toEqual(encOf(before))
    expect(parse(added).sops.age.map((a: {recipient: string}) => a.recipient)).toEqual([AGE_RECIPIENT, other.recipient])
    // The new recipient opens it, with sops-age and with kseal.
    expect(await decryptSops(added, {secretKey: other.secret, fileType: 'yaml'})).toEqual(parse(PLAIN))
    const d = await kseal(['decrypt', f], {env: env({SOPS_AGE_KEY_FILE: other.file})})
    expect([d.code, d.stdout]).toEqual([0, PLAIN])
    // Removing our own key leaves the other: held (its key file is where sops looks), so vouched for.
    const removed = await kseal(['rotate', '-i', '--remove-recipient', `age:${AGE_RECIPIENT}`, f], {
      env: env({SOPS_AGE_KEY_FILE: other.file}),
    })
    expect([removed.stderr, removed.code]).toEqual([expect.stringContaining(`-age:${AGE_RECIPIENT}`), 0])
    expect(parse(readFileSync(f, 'utf8')).sops.age.map((a: {recipient: string}) => a.recipient)).toEqual([other.recipient])
  })

  it('--data-key re-encrypts every value under a fresh data key', async () => {
    const f = fresh('db.yaml', await encrypted(AGE_RECIPIENT))
    const before = readFileSync(f, 'utf8')
    const r = await kseal(['rotate', '-i', '--data-key', f], {env: env()})
    expect(r.code).toBe(0)
    const after = readFileSync(f, 'utf8')
    const [x, y] = [encOf(before), encOf(after)]
    expect(y).toHaveLength(x.length)
    y.forEach((l, i) => expect(l).not.toBe(x[i]))
    expect(await decryptSops(after, {secretKey: AGE_SECRET, fileType: 'yaml'})).toEqual(parse(PLAIN))
  })

  it('never wraps for an entry only because it is in the file (SOPS does not authenticate its entries)', async () => {
    // Encrypted for our key and another's; we hold ours only.
    const f = fresh('db.yaml', await encrypted(AGE_RECIPIENT, other.recipient))
    const before = readFileSync(f, 'utf8')
    const r = await kseal(['rotate', '-i', '--data-key', f], {env: env()})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(
      new RegExp(`age:${other.recipient} is neither named nor held here, and SOPS does not authenticate its key entries`),
    )
    expect(readFileSync(f, 'utf8')).toBe(before)
    // Named, it is kept; removed, it is gone.
    expect((await kseal(['rotate', '-i', '--data-key', '--add-recipient', `age:${other.recipient}`, f], {env: env()})).code).toBe(0)
    expect((await kseal(['rotate', '-i', '--remove-recipient', `age:${other.recipient}`, f], {env: env()})).code).toBe(0)
    expect(parse(readFileSync(f, 'utf8')).sops.age).toHaveLength(1)
  })

  it('a tampered SOPS file is refused (exit 3), not re-wrapped', async () => {
    const enc = await encrypted(AGE_RECIPIENT)
    const f = fresh(
      'db.yaml',
      enc.replace(/(lastmodified: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d)(\d)/, (_m, a, d) => a + (d === '0' ? '1' : '0')),
    )
    const before = readFileSync(f, 'utf8')
    const r = await kseal(['rotate', '-i', '--add-recipient', `age:${other.recipient}`, f], {env: env()})
    expect(r.code).toBe(3)
    expect(readFileSync(f, 'utf8')).toBe(before)
  })
})
