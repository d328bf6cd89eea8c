/**
 * The PGP backend through the real gpg, in a throw-away GNUPGHOME with the sops project's test keys:
 * recipients by fingerprint, the keyring as an ambient identity, every failure gpg can report told
 * apart (no secret key, bad passphrase, no pinentry, altered or substituted messages), secrets kept
 * off gpg's command line, and interoperability with gpg in both directions.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import crypto from 'node:crypto'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {Backends} from '../keys/index.js'
import {dearmor, Gpg, normalizeFingerprint, parseColons} from '../keys/pgp.js'
import type {RecipientEntry} from '../keys/types.js'
import {type Binding, bindingLabel, keyBinding} from '../src/envelope/binding.js'
import {Keyring} from '../src/keyring/keyring.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {cleanEnv, kseal} from './support/cli.js'
import {
  type GpgHome,
  gpgHome,
  PASSPHRASE_KEY,
  PASSPHRASE_KEY_FPR,
  PASSPHRASE_KEY_PASSPHRASE,
  SOPS_KEY_1,
  SOPS_KEY_2,
  SOPS_KEY_3,
  SOPS_PGP_KEYS,
} from './support/gpg.js'
import {failure} from './support/failure.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const binding: Binding = {scope: 'strict', namespace: 'prod', name: 'db'}
const secret = (name: string) =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: prod\nstringData:\n  password: pw-${name}\ndata:\n  token: ${Buffer.from(`tok-${name}`).toString('base64')}\n`

let home: GpgHome
let backends: Backends

function backendsFor(env: Record<string, string | undefined>): Backends {
  return new Backends({env, cwd: home.dir, now: () => new Date()})
}

function keyring(b: Backends, keys: string[] = []): Keyring {
  return new Keyring(b, {keys, env: {XDG_CONFIG_HOME: path.join(home.dir, 'no-config')}})
}

async function encryptFor(uris: string[], text: string, b = backends): Promise<string> {
  return encryptText(text, 'in.yaml', {recipients: await Promise.all(uris.map((u) => b.recipient(u))), scope: 'strict'})
}

beforeAll(() => {
  if (!gpgTool.present) return
  home = gpgHome([SOPS_PGP_KEYS])
  backends = backendsFor(home.env)
})

afterAll(async () => {
  await backends?.close()
  home?.close()
})

describe('fingerprints and key listings', () => {
  it('normalises fingerprints as users paste them, and nothing else', () => {
    expect(normalizeFingerprint('fbc7 b9e2 a4f9 289a c0c1  d484 3d16 cee4 a273 81b4')).toBe(SOPS_KEY_1)
    expect(normalizeFingerprint(`0x${SOPS_KEY_1.toLowerCase()}`)).toBe(SOPS_KEY_1)
    for (const bad of ['3D16CEE4A27381B4', SOPS_KEY_1 + '0', 'XYZ', '', SOPS_KEY_1.replace('F', 'G')])
      expect(normalizeFingerprint(bad)).toBeNull()
  })

  it('reads --with-colons listings: a stub (#) is not a secret key, and each subkey keeps its capabilities', () => {
    const listing = [
      'sec:u:255:22:AAAAAAAAAAAAAAAA:1700000000:::u:::scESC:::#:::ed25519:::0:',
      'fpr:::::::::1111111111111111111111111111111111111111:',
      'uid:u::::1700000000::X::someone <s@example.com>::::::::::0:',
      'ssb:u:255:18:BBBBBBBBBBBBBBBB:1700000000::::::e:::+:::cv25519::',
      'fpr:::::::::2222222222222222222222222222222222222222:',
      'ssb:u:255:18:CCCCCCCCCCCCCCCC:1700000000::::::e:::#:::cv25519::',
      'fpr:::::::::3333333333333333333333333333333333333333:',
    ].join('\n')
    expect(parseColons(listing)).toEqual([
      {
        fingerprint: '1111111111111111111111111111111111111111',
        keys: [
          {fingerprint: '1111111111111111111111111111111111111111', capabilities: 'scESC', validity: 'u', secret: false},
          {fingerprint: '2222222222222222222222222222222222222222', capabilities: 'e', validity: 'u', secret: true},
          {fingerprint: '3333333333333333333333333333333333333333', capabilities: 'e', validity: 'u', secret: false},
        ],
      },
    ])
  })
})

gpgTool.describe('ASCII armor is checked by kseal before gpg sees it', () => {
  it("dearmor gives gpg's own packets; a damaged body, CRC or frame is refused", () => {
    const armored = home.gpg(['--trust-model', 'always', '--armor', '--encrypt', '-r', SOPS_KEY_1], 'x').toString()
    expect(dearmor(armored)).toEqual(home.gpg(['--dearmor'], armored))
    const lines = armored.split('\n')
    const body = lines.findIndex((l) => l === '') + 1
    const flipped = [...lines]
    flipped[body] = (flipped[body][0] === 'A' ? 'B' : 'A') + flipped[body].slice(1)
    expect(dearmor(flipped.join('\n'))).toBeNull()
    expect(dearmor(lines.filter((l) => !/^=/.test(l)).join('\n'))).toEqual(dearmor(armored)) // the CRC line is optional
    expect(dearmor(armored.replace('PGP MESSAGE-----\n', 'PGP SIGNATURE-----\n'))).toBeNull()
    expect(dearmor('junk\n' + armored)).toBeNull()
  })
})

gpgTool.describe('pgp recipients and the gpg keyring', () => {
  it("round-trips a Secret; the entry's key id is the primary fingerprint and the keyring opens it with no --key", async () => {
    const enc = await encryptFor([`pgp:${SOPS_KEY_1}`], secret('db'))
    const env = parse(enc).kseal
    expect(env.recipients).toEqual([{backend: 'pgp', kid: SOPS_KEY_1, wrapped: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/)}])
    expect(enc).not.toContain('pw-db')
    expect(await decryptText(enc, 'db.yaml', keyring(backends))).toBe(secret('db'))
  })

  it('accepts a fingerprint with spaces and lower case; refuses a subkey, an unknown key and a short key id (exit 2)', async () => {
    const r = await backends.recipient(
      `pgp:${SOPS_KEY_1.toLowerCase()
        .replace(/(.{4})/g, '$1 ')
        .trim()}`,
    )
    expect(r.kid).toBe(SOPS_KEY_1)
    const subkey = await failure(backends.recipient('pgp:71D962851765394F76DB9CFC25294A17CD90507F'))
    expect([subkey.code, subkey.exitCode]).toEqual(['ERR_USAGE', 2])
    expect(subkey.message).toContain(`use the key's primary fingerprint, pgp:${SOPS_KEY_1}`)
    const unknown = await failure(backends.recipient(`pgp:${'A'.repeat(40)}`))
    expect(unknown.message).toMatch(/no such public key in your gpg keyring \(import it: gpg --import/)
    const short = await failure(backends.recipient('pgp:3D16CEE4A27381B4'))
    expect([short.code, short.message]).toEqual(['ERR_USAGE', expect.stringMatching(/expected a full key fingerprint/)])
  })

  it('--key pgp:FPR limits decryption to that key; an entry whose secret key gpg lacks is never tried (exit 3, naming it)', async () => {
    const enc = await encryptFor([`pgp:${SOPS_KEY_1}`], secret('db'))
    const other = await failure(decryptText(enc, 'db.yaml', keyring(backends, [`pgp:${SOPS_KEY_2}`])))
    expect([other.code, other.exitCode]).toEqual(['ERR_NO_KEY', 3])
    expect(await decryptText(enc, 'db.yaml', keyring(backends, [`pgp:${SOPS_KEY_1}`]))).toBe(secret('db'))
    // Key 3 has only its public key here: encrypting works, decrypting finds no key.
    const forThree = await encryptFor([`pgp:${SOPS_KEY_3}`], secret('db'))
    const none = await failure(decryptText(forThree, 'db.yaml', keyring(backends)))
    expect([none.code, none.exitCode]).toEqual(['ERR_NO_KEY', 3])
    expect(none.message).toContain(`pgp:${SOPS_KEY_3}`)
  })

  it('several Secrets, several pgp recipients: each opens with whichever key is held', async () => {
    const many = Array.from({length: 12}, (_, i) => secret(`s${i}`)).join('---\n')
    const enc = await encryptFor([`pgp:${SOPS_KEY_3}`, `pgp:${SOPS_KEY_2}`], many)
    expect(await decryptText(enc, 'many.yaml', keyring(backends))).toBe(many)
  })

  it('refuses a wrapped key moved to another Secret, altered, or swapped for one encrypted to another key (exit 3)', async () => {
    const r = await backends.recipient(`pgp:${SOPS_KEY_1}`)
    const [id] = await backends.ambient('pgp')
    const dataKey = crypto.randomBytes(32)
    const entry = await r.wrap(dataKey, keyBinding(binding))
    expect(Buffer.from((await id.unwrap(entry, keyBinding(binding)))!)).toEqual(dataKey)

    const moved = await failure(id.unwrap(entry, keyBinding({...binding, name: 'other'})))
    expect([moved.code, moved.exitCode, moved.message]).toEqual(['ERR_DECRYPT', 3, expect.stringMatching(/moved or renamed/)])

    const raw = Buffer.from(entry.wrapped, 'base64')
    raw[raw.length - 8] ^= 0x01
    const altered = await failure(id.unwrap({...entry, wrapped: raw.toString('base64')}, keyBinding(binding)))
    expect([altered.code, altered.exitCode, altered.message]).toEqual(['ERR_DECRYPT', 3, expect.stringMatching(/altered/)])

    // A valid message, but to key 2, under key 1's name: gpg opens it with key 2 — kseal does not accept it.
    const toTwo = (await (await backends.recipient(`pgp:${SOPS_KEY_2}`)).wrap(dataKey, keyBinding(binding))).wrapped
    const swapped = await failure(id.unwrap({...entry, wrapped: toTwo}, keyBinding(binding)))
    expect([swapped.code, swapped.message]).toEqual(['ERR_DECRYPT', expect.stringMatching(/encrypted to another key/)])

    // A literal packet that was never encrypted: gpg "decrypts" it with exit 0, kseal refuses it.
    const literal = home.gpg(['--store'], Buffer.concat([dataKey, bindingLabel(binding)]))
    const plain = await failure(id.unwrap({...entry, wrapped: literal.toString('base64')}, keyBinding(binding)))
    expect([plain.code, plain.message]).toEqual(['ERR_DECRYPT', expect.stringMatching(/not an encrypted OpenPGP message/)])

    const garbage = await failure(id.unwrap({...entry, wrapped: 'bm90IGEgbWVzc2FnZQ=='}, keyBinding(binding)))
    expect(garbage.code).toBe('ERR_DECRYPT')
    const notBase64 = await failure(id.unwrap({...entry, wrapped: '%%%'}, keyBinding(binding)))
    expect([notBase64.code, notBase64.exitCode]).toEqual(['ERR_INTEGRITY', 3])
    // Not this backend's entry, or another key's under --key: null, not an error.
    expect(await id.unwrap({...entry, backend: 'age'}, keyBinding(binding))).toBeNull()
    const [only2] = await (await backends.get('pgp')).identities(SOPS_KEY_2, backends.ctx)
    expect(await only2.unwrap(entry, keyBinding(binding))).toBeNull()
  })

  it("passes no secret on gpg's command line: data keys go through stdin and stdout only", async () => {
    const log = path.join(home.dir, 'argv.log')
    const wrapper = path.join(home.dir, 'gpg-wrapper.sh')
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec gpg "$@"\n`, {mode: 0o700})
    const b = backendsFor({...home.env, KSEAL_GPG: wrapper})
    try {
      const enc = await encryptFor([`pgp:${SOPS_KEY_1}`], secret('argv'), b)
      expect(await decryptText(enc, 'argv.yaml', keyring(b))).toBe(secret('argv'))
      const argv = readFileSync(log, 'utf8')
      expect(argv).toMatch(/--encrypt/)
      expect(argv).toMatch(/--decrypt/)
      for (const leak of ['pw-argv', 'kseal/v1', Buffer.from('tok-argv').toString('base64'), '--passphrase'])
        expect(argv).not.toContain(leak)
    } finally {
      await b.close()
    }
  })

  it('says so when gpg is not installed (exit 1)', async () => {
    const b = backendsFor({...home.env, KSEAL_GPG: '/nonexistent/gpg'})
    try {
      const err = await failure(b.recipient(`pgp:${SOPS_KEY_1}`))
      expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
      expect(err.message).toMatch(/gpg not found \(\/nonexistent\/gpg\): install GnuPG/)
    } finally {
      await b.close()
    }
  })
})

gpgTool.describe('passphrase-protected keys go through gpg-agent and its pinentry', () => {
  let pw: GpgHome
  let b: Backends
  let entry: RecipientEntry
  const dataKey = crypto.randomBytes(32)

  beforeAll(async () => {
    pw = gpgHome([])
    pw.gpg(['--pinentry-mode', 'loopback', '--passphrase-fd', '0', '--import', PASSPHRASE_KEY], PASSPHRASE_KEY_PASSPHRASE)
    b = new Backends({env: pw.env, cwd: pw.dir, now: () => new Date()})
    entry = await (await b.recipient(`pgp:${PASSPHRASE_KEY_FPR}`)).wrap(dataKey, keyBinding(binding))
  })

  afterAll(async () => {
    await b?.close()
    pw?.close()
  })

  it('the right passphrase opens it', async () => {
    pw.pinentry(PASSPHRASE_KEY_PASSPHRASE)
    const [id] = await b.ambient('pgp')
    expect(Buffer.from((await id.unwrap(entry, keyBinding(binding)))!)).toEqual(dataKey)
  })

  it('a wrong passphrase is a decryption failure (exit 3); no pinentry or a cancelled one is a backend failure (exit 1)', async () => {
    pw.pinentry('not-the-passphrase')
    const wrong = await failure(new Gpg(b.ctx).decrypt(Buffer.from(entry.wrapped, 'base64'), {maxOutput: 1024}).then(rejectFailure))
    expect(wrong.message).toBe('bad passphrase')
    const [id] = await (await b.get('pgp')).identities(PASSPHRASE_KEY_FPR, b.ctx)
    const bad = await failure(id.unwrap(entry, keyBinding(binding)))
    expect([bad.code, bad.exitCode, bad.message]).toEqual([
      'ERR_DECRYPT',
      3,
      `cannot decrypt the data key with pgp:${PASSPHRASE_KEY_FPR}: bad passphrase`,
    ])

    pw.pinentry(null)
    const cancelled = await failure(id.unwrap(entry, keyBinding(binding)))
    expect([cancelled.code, cancelled.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(cancelled.message).toMatch(/gpg-agent could not ask for the passphrase/)
  })
})

/** Turns a failed DecryptOutcome into a rejection carrying its detail (for asserting on it). */
async function rejectFailure(r: Awaited<ReturnType<Gpg['decrypt']>>): Promise<unknown> {
  if (r.ok) return r
  throw new Error(r.detail)
}

gpgTool.describe('pgp interoperability with gpg', () => {
  it('gpg --decrypt opens what kseal wrapped: the data key followed by the binding label', async () => {
    const dataKey = crypto.randomBytes(32)
    const entry = await (await backends.recipient(`pgp:${SOPS_KEY_2}`)).wrap(dataKey, keyBinding(binding))
    expect(home.gpg(['--decrypt'], Buffer.from(entry.wrapped, 'base64'))).toEqual(Buffer.concat([dataKey, bindingLabel(binding)]))
  })

  it('kseal opens what gpg --encrypt made, armored or binary', async () => {
    const dataKey = crypto.randomBytes(32)
    const [id] = await backends.ambient('pgp')
    for (const armor of [[], ['--armor']]) {
      const msg = home.gpg(
        ['--trust-model', 'always', ...armor, '--encrypt', '-r', SOPS_KEY_1],
        Buffer.concat([dataKey, bindingLabel(binding)]),
      )
      const entry: RecipientEntry = {backend: 'pgp', kid: SOPS_KEY_1, wrapped: msg.toString('base64')}
      if (armor.length) {
        // kseal's entries are binary; an armored message decodes to the same packets.
        const dearmored = home.gpg(['--dearmor'], msg)
        entry.wrapped = dearmored.toString('base64')
      }
      expect(Buffer.from((await id.unwrap(entry, keyBinding(binding)))!)).toEqual(dataKey)
    }
  })

  it('the built CLI: encrypt -r pgp:FPR, inspect, decrypt with the keyring in GNUPGHOME', async () => {
    const env = cleanEnv({GNUPGHOME: home.env.GNUPGHOME})
    const enc = await kseal(['encrypt', '-r', `pgp:${SOPS_KEY_1}`], {env, input: secret('cli')})
    expect(enc.stderr).toBe('')
    expect(enc.code).toBe(0)
    expect((await kseal(['inspect'], {env, input: enc.stdout})).stdout).toContain(`pgp:${SOPS_KEY_1}`)
    const dec = await kseal(['decrypt'], {env, input: enc.stdout})
    expect(dec.stderr).toBe('')
    expect(dec.stdout).toBe(secret('cli'))
    // Another GNUPGHOME without that secret key: exit 3, naming the key needed.
    const empty = gpgHome([])
    try {
      const none = await kseal(['decrypt'], {env: cleanEnv({GNUPGHOME: empty.dir}), input: enc.stdout})
      expect(none.code).toBe(3)
      expect(none.stderr).toContain(`pgp:${SOPS_KEY_1}`)
    } finally {
      empty.close()
    }
  })
})
