/**
 * The age backend: recipients and key files as age-keygen writes them, key discovery like RSA keys,
 * interoperability with the real `age` binary both ways, and a real sops age identity.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import crypto from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {AgeIdentity} from '../keys/age.js'
import {Backends} from '../keys/index.js'
import type {RecipientEntry} from '../keys/types.js'
import {type Binding, bindingLabel, keyBinding} from '../src/envelope/binding.js'
import {Keyring} from '../src/keyring/keyring.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {cleanEnv, INTEROP, kseal} from './support/cli.js'
import {failure} from './support/failure.js'

const SOPS_AGE = path.join(INTEROP, 'sops', 'humphd-sops-age', 'age-fixtures')
let dir: string
let keyFile: string
let recipient: string
let backends: Backends

const secret = (name: string, ns = 'prod') =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nstringData:\n  password: pw-${name}\ndata:\n  token: ${Buffer.from(`tok-${name}`).toString('base64')}\n`
const binding: Binding = {scope: 'strict', namespace: 'prod', name: 'db'}

function keygen(file: string): string {
  execFileSync('age-keygen', ['-o', file], {stdio: ['ignore', 'ignore', 'pipe']})
  return execFileSync('age-keygen', ['-y', file], {encoding: 'utf8'}).trim()
}

function keyring(keys: string[], env: Record<string, string | undefined> = {}): Keyring {
  return new Keyring(backends, {keys, env: {XDG_CONFIG_HOME: path.join(dir, 'no-config'), ...env}})
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-age-'))
  keyFile = path.join(dir, 'key.txt')
  recipient = keygen(keyFile)
  backends = new Backends({env: {}, cwd: dir, now: () => new Date()})
})

afterAll(async () => {
  await backends.close()
})

describe('age recipients and identities', () => {
  it('round-trips a Secret; the entry holds the recipient as its key id', async () => {
    const enc = await encryptText(secret('db'), 'db.yaml', {recipients: [await backends.recipient(`age:${recipient}`)], scope: 'strict'})
    const env = parse(enc).kseal
    expect(env.recipients).toEqual([{backend: 'age', kid: recipient, wrapped: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/)}])
    expect(enc).not.toContain('pw-db')
    expect(await decryptText(enc, 'db.yaml', keyring([`age:${keyFile}`]))).toBe(secret('db'))
  })

  it('finds the key file by --key age:PATH, a bare path, a directory, KSEAL_KEYS and the config directory', async () => {
    const enc = await encryptText(secret('db'), 'db.yaml', {recipients: [await backends.recipient(`age:${recipient}`)], scope: 'strict'})
    const cfg = path.join(dir, 'xdg')
    mkdirSync(path.join(cfg, 'kseal', 'keys'), {recursive: true})
    copyFileSync(keyFile, path.join(cfg, 'kseal', 'keys', 'break-glass.txt'))
    for (const k of [
      keyring([`age:${keyFile}`]),
      keyring([keyFile]),
      keyring([dir]),
      keyring([], {KSEAL_KEYS: keyFile}),
      keyring([], {XDG_CONFIG_HOME: cfg}),
    ]) {
      expect(await decryptText(enc, 'db.yaml', k)).toBe(secret('db'))
    }
    // Without the key anywhere: exit 3, naming the recipient it needs.
    const none = await failure(decryptText(enc, 'db.yaml', keyring([])))
    expect([none.code, none.exitCode]).toEqual(['ERR_NO_KEY', 3])
    expect(none.message).toContain(`age:${recipient}`)
  })

  it('a key file may hold several identities; the one whose recipient matches is used', async () => {
    const second = path.join(dir, 'second.txt')
    const r2 = keygen(second)
    const both = path.join(dir, 'both.txt')
    writeFileSync(both, readFileSync(keyFile, 'utf8') + '\n' + readFileSync(second, 'utf8'), {mode: 0o600})
    const ids = await (await backends.get('age')).identities(both, backends.ctx)
    expect(ids.map((i) => i.kid)).toEqual([recipient, r2])
    // Each identity gives its recipient back (rotation re-wraps with it).
    expect(ids.map((i) => i.recipient!().uri)).toEqual([`age:${recipient}`, `age:${r2}`])
    const enc = await encryptText(secret('db'), 'db.yaml', {recipients: [await backends.recipient(`age:${r2}`)], scope: 'strict'})
    expect(await decryptText(enc, 'db.yaml', keyring([both]))).toBe(secret('db'))
  })

  it('refuses a wrapped key moved to another Secret, or altered (exit 3)', async () => {
    const r = await backends.recipient(`age:${recipient}`)
    const [id] = await (await backends.get('age')).identities(keyFile, backends.ctx)
    const entry = await r.wrap(Buffer.alloc(32, 9), keyBinding(binding))
    expect(Buffer.from((await id.unwrap(entry, keyBinding(binding)))!)).toEqual(Buffer.alloc(32, 9))
    const moved = await failure(id.unwrap(entry, keyBinding({...binding, name: 'other'})))
    expect([moved.code, moved.exitCode]).toEqual(['ERR_DECRYPT', 3])
    expect(moved.message).toMatch(/moved or renamed/)
    const raw = Buffer.from(entry.wrapped, 'base64')
    raw[raw.length - 5] ^= 0x40
    const altered = await failure(id.unwrap({...entry, wrapped: raw.toString('base64')}, keyBinding(binding)))
    expect([altered.code, altered.exitCode]).toEqual(['ERR_DECRYPT', 3])
    // Not this identity's entry: null, not an error.
    expect(await id.unwrap({...entry, kid: 'age1someoneelse'}, keyBinding(binding))).toBeNull()
    expect(await id.unwrap({...entry, backend: 'rsa'}, keyBinding(binding))).toBeNull()
  })

  it('checks recipients, including the bech32 checksum (exit 2)', async () => {
    const broken = recipient.slice(0, -1) + (recipient.endsWith('q') ? 'p' : 'q')
    for (const bad of ['age:age1xyz', `age:${broken}`, `age:${recipient.toUpperCase()}`]) {
      const err = await failure(backends.recipient(bad))
      expect([err.code, err.exitCode]).toEqual(['ERR_USAGE', 2])
      expect(err.message).toMatch(/not an age recipient/)
    }
  })

  it('checks key files: permissions, malformed lines (named by number, never echoed), plugins', async () => {
    const loose = path.join(dir, 'loose.txt')
    copyFileSync(keyFile, loose)
    chmodSync(loose, 0o644)
    const perm = await failure(keyring([loose]).unwrap([{backend: 'age', kid: recipient, wrapped: 'x'}], keyBinding(binding)))
    expect([perm.code, perm.exitCode]).toEqual(['ERR_KEY_PERMISSIONS', 2])

    const secretLine = readFileSync(keyFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
    const bad = path.join(dir, 'bad.txt')
    writeFileSync(bad, `# comment\n${secretLine}\n${secretLine.slice(0, -3)}ZZZ\n`, {mode: 0o600})
    const malformed = await failure((await backends.get('age')).identities(bad, backends.ctx))
    expect([malformed.code, malformed.exitCode]).toEqual(['ERR_CONFIG', 2])
    expect(malformed.message).toMatch(/bad\.txt: line 3: /)
    expect(malformed.message).not.toContain(secretLine.slice(20, 40))

    const plugin = path.join(dir, 'plugin.txt')
    writeFileSync(plugin, `${secretLine}\nAGE-PLUGIN-YUBIKEY-1QQQQQQ\n`, {mode: 0o600})
    expect((await failure((await backends.get('age')).identities(plugin, backends.ctx))).message).toMatch(
      /line 2: age plugin identities are not supported/,
    )
  })
})

describe('age interoperability', () => {
  it('a data key wrapped by kseal opens with `age -d -i key.txt`', async () => {
    const dataKey = crypto.randomBytes(32)
    const entry = await (await backends.recipient(`age:${recipient}`)).wrap(dataKey, keyBinding(binding))
    const file = path.join(dir, 'wrapped.age')
    writeFileSync(file, Buffer.from(entry.wrapped, 'base64'))
    const r = spawnSync('age', ['-d', '-i', keyFile, file])
    expect(r.stderr.toString()).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toEqual(Buffer.concat([dataKey, bindingLabel(binding)]))
  })

  it("a file made by `age -r age1...` opens with kseal's identity", async () => {
    const dataKey = crypto.randomBytes(32)
    const r = spawnSync('age', ['-r', recipient], {input: Buffer.concat([dataKey, bindingLabel(binding)])})
    expect(r.status).toBe(0)
    const entry: RecipientEntry = {backend: 'age', kid: recipient, wrapped: r.stdout.toString('base64')}
    const k = keyring([keyFile])
    expect(Buffer.from((await k.unwrap([entry], keyBinding(binding))).dataKey)).toEqual(dataKey)
    // A whole Secret's entry re-wrapped by age opens its data key too, but format 2 authenticates
    // every recipient entry, so the swapped entry is an altered entry.
    const enc = await encryptText(secret('db'), 'db.yaml', {recipients: [await backends.recipient(`age:${recipient}`)], scope: 'strict'})
    const ours = parse(enc).kseal.recipients[0].wrapped as string
    const tmp = path.join(dir, 'ours.age')
    writeFileSync(tmp, Buffer.from(ours, 'base64'))
    const opened = spawnSync('age', ['-d', '-i', keyFile, tmp]).stdout
    const rewrapped = spawnSync('age', ['-r', recipient], {input: opened}).stdout.toString('base64')
    expect(rewrapped).not.toBe(ours)
    await expect(decryptText(enc.replace(ours, rewrapped), 'db.yaml', k)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(/recipient entry was added, removed or altered/),
    })
    expect(await decryptText(enc, 'db.yaml', k)).toBe(secret('db'))
  })

  it("reads a real age identity from sops: its recipient matches, and it opens sops's wrapped data key", async () => {
    const key = path.join(dir, 'sops-key.txt')
    copyFileSync(path.join(SOPS_AGE, 'key.txt'), key)
    chmodSync(key, 0o600)
    const [id] = (await (await backends.get('age')).identities(key, backends.ctx)) as AgeIdentity[]
    const doc = parse(readFileSync(path.join(SOPS_AGE, 'secret.enc.yaml'), 'utf8'))
    const stanza = doc.sops.age.find((a: {recipient: string}) => a.recipient === id.kid)
    expect(id.kid).toBe('age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr')
    expect(stanza).toBeDefined()
    const sopsKey = Buffer.from(await id.decrypt(stanza.enc))
    expect(sopsKey).toHaveLength(32)
    // Proof that these are the right 32 bytes: sops's own value for `secret` decrypts with them.
    const m = /^ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:str\]$/.exec(doc.secret)!
    const d = crypto.createDecipheriv('aes-256-gcm', sopsKey, Buffer.from(m[2], 'base64'))
    d.setAAD(Buffer.from('secret:'))
    d.setAuthTag(Buffer.from(m[3], 'base64'))
    expect(Buffer.concat([d.update(Buffer.from(m[1], 'base64')), d.final()]).toString()).toBe('this is a secret')
    // A stanza for another recipient does not open.
    await expect(id.decrypt(doc.sops.age.find((a: {recipient: string}) => a.recipient !== id.kid).enc)).rejects.toThrow()
  })
})

describe('age through the built CLI', () => {
  it('encrypt -r age:..., inspect, decrypt with KSEAL_KEYS', async () => {
    const enc = await kseal(['encrypt', '-r', `age:${recipient}`], {env: cleanEnv(), input: secret('web', 'default')})
    expect(enc.stderr).toBe('')
    expect(enc.code).toBe(0)
    const info = await kseal(['inspect'], {env: cleanEnv(), input: enc.stdout})
    expect(info.stdout).toContain(`age:${recipient}`)
    const dec = await kseal(['decrypt'], {env: cleanEnv({KSEAL_KEYS: keyFile}), input: enc.stdout})
    expect(dec.stderr).toBe('')
    expect(dec.stdout).toBe(secret('web', 'default'))
    const none = await kseal(['decrypt'], {env: cleanEnv(), input: enc.stdout})
    expect(none.code).toBe(3)
    expect(none.stderr).toContain(`age:${recipient}`)
  })
})
