/**
 * Reading SOPS files: every SOPS file in ../shared/interop (written by the real sops, PGP through
 * the real gpg, age through sops's own key places) opens to its expected plaintext with the types
 * sops recorded; every tampered variant is refused (exit 3); the selection options and
 * mac_only_encrypted behave as sops defines them; multi-document files are verified as sops
 * verifies them; and decryptedText changes nothing but the values and the sops blocks.
 */
import {execFileSync} from 'node:child_process'
import {copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseDocument} from 'yaml'
import {Backends} from '../keys/index.js'
import {resolvePlain, formatGoFloat, rfc3339RoundTrip} from '../src/formats/sops/go.js'
import {
  decryptedText,
  looksLikeSops,
  openSops,
  parseSops,
  recipientNames,
  encryptSops,
  SopsMasterKeys,
  type OpenedSops,
} from '../src/formats/sops/index.js'
import {sopsAgeIdentities} from '../src/formats/sops/masterkeys.js'
import {goRegex, type RuleSpec} from '../src/formats/sops/rules.js'
import {Keyring} from '../src/keyring/keyring.js'
import {INTEROP} from './support/cli.js'
import {type GpgHome, gpgHome, SOPS_KEY_1, SOPS_KEY_2} from './support/gpg.js'
import {checkSopsMac} from './support/sops-mac.js'
import {sopsTamperings} from './support/sops-tamper.js'
import {failure} from './support/failure.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const ageTool = tool('age')
const SOPS = path.join(INTEROP, 'sops')
const AGE_FIXTURES = 'humphd-sops-age/age-fixtures'
const PGP_FIXTURES = 'getsops-sops/pgp-fixtures'
const AGE_RECIPIENT = 'age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr'

const read = (rel: string) => readFileSync(path.join(SOPS, rel), 'utf8')
const expected = (rel: string) => JSON.parse(readFileSync(path.join(SOPS, 'expected', `${path.basename(rel)}.plain.json`), 'utf8'))

let tmp: string
let ageKey: string
let home: GpgHome | undefined

/** An environment with no key of the developer's: HOME and XDG in a temp directory. */
function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {PATH: process.env.PATH, HOME: tmp, XDG_CONFIG_HOME: path.join(tmp, 'xdg-empty'), ...(home ? {GNUPGHOME: home.dir} : {}), ...extra}
}

async function withKeys<T>(
  e: Record<string, string | undefined>,
  fn: (k: SopsMasterKeys) => Promise<T>,
  keyring?: (b: Backends) => Keyring,
): Promise<T> {
  const b = new Backends({env: e, cwd: tmp, now: () => new Date()})
  const k = new SopsMasterKeys(b, {keyring: keyring?.(b)})
  try {
    return await fn(k)
  } finally {
    await k.close()
    await b.close()
  }
}

async function open(text: string, file: string, e = env({SOPS_AGE_KEY_FILE: ageKey})): Promise<OpenedSops> {
  return withKeys(e, (k) => openSops(parseSops(text, {file}), k))
}

async function decrypt(text: string, file: string, e?: Record<string, string | undefined>): Promise<string> {
  return decryptedText(await open(text, file, e))
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-sops-'))
  ageKey = path.join(tmp, 'age-key.txt')
  copyFileSync(path.join(SOPS, AGE_FIXTURES, 'key.txt'), ageKey)
  chmodSync(ageKey, 0o600)
  if (gpgTool.present) home = gpgHome()
})

afterAll(() => home?.close())

describe('Go semantics sops computes with', () => {
  it('reads plain scalars as go-yaml v3 does', () => {
    const cases: [string, string, unknown][] = [
      ['0x1F', 'int', 31n],
      ['0o17', 'int', 15n],
      ['0777', 'int', 511n],
      ['1_000', 'int', 1000n],
      ['-0b101', 'int', -5n],
      ['+12', 'int', 12n],
      ['09', 'float', 9],
      ['1e3', 'float', 1000],
      ['.5', 'float', 0.5],
      ['1_0.5', 'float', 10.5],
      ['-.inf', 'float', -Infinity],
      ['yes', 'str', 'yes'],
      ['on', 'str', 'on'],
      ['2024-01-02', 'str', '2024-01-02'],
      ['1e400', 'str', '1e400'],
      ['0x', 'str', '0x'],
      ['True', 'bool', true],
      ['FALSE', 'bool', false],
      ['~', 'null', undefined],
      ['', 'null', undefined],
      ['Null', 'null', undefined],
      ['9223372036854775807', 'int', 9223372036854775807n],
      ['9223372036854775808', 'uint', 9223372036854775808n],
    ]
    for (const [text, type, value] of cases) {
      const r = resolvePlain(text) as {type: string; value?: unknown}
      expect([text, r.type, r.value]).toEqual([text, type, value])
    }
  })

  it("formats floats as strconv.FormatFloat(f, 'f', -1, 64) and round-trips RFC 3339 times as Go does", () => {
    expect([1234568000, 25.4, 0.001, 1e21, 5e-324, -0, 3.14, 100].map(formatGoFloat)).toEqual([
      '1234568000',
      '25.4',
      '0.001',
      '1000000000000000000000',
      '0.' + '0'.repeat(323) + '5',
      '-0',
      '3.14',
      '100',
    ])
    expect(rfc3339RoundTrip('2024-03-25T22:08:10.123456Z')).toBe('2024-03-25T22:08:10Z')
    expect(rfc3339RoundTrip('2024-03-25T22:08:10+00:00')).toBe('2024-03-25T22:08:10Z')
    expect(rfc3339RoundTrip('2024-03-25T22:08:10+02:00')).toBe('2024-03-25T22:08:10+02:00')
    for (const bad of ['2024-02-30T00:00:00Z', '2024-03-25 22:08:10Z', '2024-03-25T24:00:00Z', '2024-3-25T22:08:10Z'])
      expect(rfc3339RoundTrip(bad)).toBeNull()
  })
})

describe('the SOPS files sops wrote (../shared/interop)', () => {
  const ageFiles = [`${AGE_FIXTURES}/secret.enc.yaml`, `${AGE_FIXTURES}/secret.enc.json`]
  const pgpFiles = ['format.enc.yaml', 'format.enc.json', 'multiple_keys.yaml', 'comments.enc.yaml', 'example.yaml', 'example.json'].map(
    (f) => `${PGP_FIXTURES}/${f}`,
  )

  it.each(ageFiles)('%s opens to its expected plaintext with the age key in SOPS_AGE_KEY_FILE', async (rel) => {
    const out = await decrypt(read(rel), rel)
    expect(out).not.toMatch(/ENC\[|^sops:|"sops"/m)
    expect(parse(out)).toEqual(expected(rel))
  })

  gpgTool.describe('PGP, through the real gpg', () => {
    it.each(pgpFiles)('%s opens to its expected plaintext', async (rel) => {
      expect(parse(await decrypt(read(rel), rel))).toEqual(expected(rel))
    })

    it('a file for Key 1 or Key 2 opens with Key 2 alone', async () => {
      const two = gpgHome([])
      try {
        two.gpg(['--import'], home!.gpg(['--export-secret-keys', SOPS_KEY_2]))
        const rel = `${PGP_FIXTURES}/multiple_keys.yaml`
        expect(parse(await decrypt(read(rel), rel, env({GNUPGHOME: two.dir})))).toEqual({message: 'hello'})
        // Without either secret key: exit 3, naming both.
        const none = gpgHome([])
        try {
          const err = await failure(decrypt(read(rel), rel, env({GNUPGHOME: none.dir})))
          expect([err.code, err.exitCode]).toEqual(['ERR_NO_KEY', 3])
          expect(err.message).toContain(`pgp:${SOPS_KEY_1}, pgp:${SOPS_KEY_2}`)
        } finally {
          none.close()
        }
      } finally {
        two.close()
      }
    })

    it('keeps the types sops recorded, and decrypts encrypted comments in place', async () => {
      const rel = `${PGP_FIXTURES}/example.yaml`
      const opened = await open(read(rel), rel)
      const byPath = (p: string) => opened.groups[0].values.find((v) => v.loc.join('.') === p)!.value
      expect(byPath('number')).toEqual({type: 'float', value: 1234568000})
      expect(byPath('somebooleans.0')).toEqual({type: 'bool', value: true})
      expect(byPath('somelist_unencrypted.0')).toEqual({type: 'str', value: 'all elements of this list'})
      const out = decryptedText(opened)
      expect(out).toContain('number: 1234568000.0\n') // a float stays a float
      expect(out).toContain('        # private key for secret operations in app2\n')
      expect(out).toContain('                # sops supports unencrypted fields\n')
      const comments = decryptedText(await open(read(`${PGP_FIXTURES}/comments.enc.yaml`), 'comments.enc.yaml'))
      expect(comments).toBe('# first comment in file\nlorem: ipsum\n# this-is-a-comment\ndolor: sit\n')
    })

    it('changes nothing but the encrypted values and the sops block: every other line is as it was', async () => {
      const rel = `${PGP_FIXTURES}/example.yaml`
      const text = read(rel)
      const out = await decrypt(text, rel)
      const before = text.slice(0, text.indexOf('\nsops:\n') + 1).split('\n')
      const after = out.split('\n')
      expect(after).toHaveLength(before.length)
      before.forEach((line, i) => {
        if (!line.includes('ENC[')) expect(after[i]).toBe(line)
        else expect(after[i].slice(0, line.indexOf('ENC['))).toBe(line.slice(0, line.indexOf('ENC[')).replace(/#$/, '#'))
      })
    })
  })

  it("refuses sops's dotenv files clearly (exit 2): they are not Kubernetes manifests", async () => {
    for (const rel of [`${AGE_FIXTURES}/secret.enc.env`, `${PGP_FIXTURES}/format.enc.env`]) {
      expect(looksLikeSops(read(rel))).toBe(true)
      const err = await failure(() => parseSops(read(rel), {file: rel}))
      expect([err.code, err.exitCode]).toEqual(['ERR_INPUT', 2])
      expect(err.message).toMatch(/SOPS dotenv file is not a Kubernetes manifest/)
    }
    expect(() => parseSops('[sops]\nmac = ENC[AES256_GCM,data:x]\n')).toThrow(/SOPS INI file/)
  })

  it('lists the recipients without any key', () => {
    expect(recipientNames(parseSops(read(`${AGE_FIXTURES}/secret.enc.yaml`)))).toEqual([
      [`age:${AGE_RECIPIENT}`, expect.stringMatching(/^age:age1/), expect.stringMatching(/^age:age1/)],
    ])
    expect(recipientNames(parseSops(read(`${PGP_FIXTURES}/example.json`)))).toEqual([[`pgp:${SOPS_KEY_1}`, `pgp:${SOPS_KEY_2}`]])
  })

  ageTool.it("the test-only MAC check agrees with sops: it verifies sops's own files with the key the real age binary unwraps", () => {
    for (const rel of [`${AGE_FIXTURES}/secret.enc.yaml`, `${AGE_FIXTURES}/secret.enc.json`]) {
      const text = read(rel)
      const enc = (parse(text).sops.age as {recipient: string; enc: string}[]).find((a) => a.recipient === AGE_RECIPIENT)!.enc
      const dataKey = execFileSync('age', ['-d', '-i', ageKey], {input: enc})
      const check = checkSopsMac(text, dataKey)
      expect(check.ok).toBe(true)
      // A renamed key changes its value's AAD, an altered value its tag: neither decrypts.
      expect(() => checkSopsMac(text.replace('"float": "ENC', '"floaty": "ENC').replace('float: ENC', 'floaty: ENC'), dataKey)).toThrow()
      expect(() =>
        checkSopsMac(
          text.replace(/(data:)(.)/, (_m, a, c) => a + (c === 'A' ? 'B' : 'A')),
          dataKey,
        ),
      ).toThrow()
    }
  })
})

describe('every SOPS fixture, tampered, is refused (exit 3)', () => {
  const all = [
    `${AGE_FIXTURES}/secret.enc.yaml`,
    `${AGE_FIXTURES}/secret.enc.json`,
    ...['format.enc.yaml', 'format.enc.json', 'multiple_keys.yaml', 'comments.enc.yaml', 'example.yaml', 'example.json'].map(
      (f) => `${PGP_FIXTURES}/${f}`,
    ),
  ]
  const variants = sopsTamperings(read)
  const cases = (files: string[]) => files.flatMap((rel) => variants.map(([name, make, code]) => [rel, name, make, code] as const))
  const refused = async (rel: string, make: (rel: string) => string, code: string) => {
    const variant = make(rel)
    expect(variant).not.toBe(read(rel))
    const err = await failure(decrypt(variant, rel))
    expect([err.code, err.exitCode]).toEqual([code, 3])
  }

  it.each(cases(all.filter((f) => f.startsWith(AGE_FIXTURES))))('%s: %s', (rel, _name, make, code) => refused(rel, make, code))
  gpgTool.describe('PGP fixtures', () => {
    it.each(cases(all.filter((f) => f.startsWith(PGP_FIXTURES))))('%s: %s', (rel, _name, make, code) => refused(rel, make, code))
  })
})

describe('where sops looks for age keys', () => {
  const rel = `${AGE_FIXTURES}/secret.enc.yaml`
  const plain = expected(rel)

  it("SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, $XDG_CONFIG_HOME/sops/age/keys.txt, ~/.config/sops/age/keys.txt and kseal's own key files", async () => {
    const identity = readFileSync(ageKey, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
    expect(parse(await decrypt(read(rel), rel, env({SOPS_AGE_KEY: `# a comment\n${identity}\n`})))).toEqual(plain)
    expect(parse(await decrypt(read(rel), rel, env({SOPS_AGE_KEY_FILE: ageKey})))).toEqual(plain)
    const xdg = path.join(tmp, 'xdg')
    mkdirSync(path.join(xdg, 'sops', 'age'), {recursive: true})
    copyFileSync(ageKey, path.join(xdg, 'sops', 'age', 'keys.txt'))
    chmodSync(path.join(xdg, 'sops', 'age', 'keys.txt'), 0o600)
    expect(parse(await decrypt(read(rel), rel, env({XDG_CONFIG_HOME: xdg})))).toEqual(plain)
    const homeDir = path.join(tmp, 'home')
    mkdirSync(path.join(homeDir, '.config', 'sops', 'age'), {recursive: true})
    copyFileSync(ageKey, path.join(homeDir, '.config', 'sops', 'age', 'keys.txt'))
    chmodSync(path.join(homeDir, '.config', 'sops', 'age', 'keys.txt'), 0o600)
    expect(parse(await decrypt(read(rel), rel, env({HOME: homeDir, XDG_CONFIG_HOME: undefined})))).toEqual(plain)
    const viaKeyring = await withKeys(
      env(),
      (k) => openSops(parseSops(read(rel)), k),
      (b) => new Keyring(b, {keys: [`age:${ageKey}`], env: {XDG_CONFIG_HOME: path.join(tmp, 'none')}}),
    )
    expect(parse(decryptedText(viaKeyring))).toEqual(plain)
  })

  it("reads sops's own age test identity from SOPS_AGE_KEY, and it opens sops's age vector", async () => {
    const vectors = path.join(SOPS, 'getsops-sops', 'age-vectors')
    const [id] = await sopsAgeIdentities({
      SOPS_AGE_KEY: readFileSync(path.join(vectors, 'mockIdentity.txt'), 'utf8'),
      HOME: tmp,
      XDG_CONFIG_HOME: path.join(tmp, 'none'),
    })
    expect(id.kid).toBe('age1lzd99uklcjnc0e7d860axevet2cz99ce9pq6tzuzd05l5nr28ams36nvun')
    expect(Buffer.from(await id.decrypt(readFileSync(path.join(vectors, 'mockEncryptedKey.age'), 'utf8'))).toString()).toBe('data')
  })

  it("skips plugin identities in sops's key files; without the key it names every recipient (exit 3)", async () => {
    const withPlugin = path.join(tmp, 'plugin-keys.txt')
    writeFileSync(withPlugin, `AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n${readFileSync(ageKey, 'utf8')}`, {mode: 0o600})
    expect(parse(await decrypt(read(rel), rel, env({SOPS_AGE_KEY_FILE: withPlugin})))).toEqual(plain)
    const none = await failure(decrypt(read(rel), rel, env()))
    expect([none.code, none.exitCode]).toEqual(['ERR_NO_KEY', 3])
    expect(none.message).toContain(`age:${AGE_RECIPIENT}`)
    expect(none.message.match(/age:age1/g)).toHaveLength(3)
    // A loose key file is refused, as kseal refuses its own.
    const loose = path.join(tmp, 'loose.txt')
    copyFileSync(ageKey, loose)
    chmodSync(loose, 0o644)
    expect((await failure(decrypt(read(rel), rel, env({SOPS_AGE_KEY_FILE: loose})))).code).toBe('ERR_KEY_PERMISSIONS')
  })
})

describe('tampered SOPS files are refused (exit 3)', () => {
  const rel = `${AGE_FIXTURES}/secret.enc.yaml`
  const text = read(rel)
  const flip = (s: string, marker: string) => {
    expect(s).toContain(marker)
    const at = s.indexOf(marker) + marker.length
    return s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1)
  }
  const variants: [string, string, string, RegExp][] = [
    ['a value flipped', flip(text, 'secret: ENC[AES256_GCM,data:'), 'ERR_INTEGRITY', /cannot decrypt: the value was altered/],
    ['a value removed', text.replace(/^string: .*\n/m, ''), 'ERR_INTEGRITY', /MAC mismatch/],
    ['an unencrypted value added', text.replace('sops:\n', 'added_unencrypted: sneaky\nsops:\n'), 'ERR_INTEGRITY', /MAC mismatch/],
    [
      'a plaintext value put where an encrypted one belongs',
      text.replace(/^string: .*$/m, 'string: hello'),
      'ERR_INTEGRITY',
      /rules say this value is encrypted, but it is plaintext/,
    ],
    [
      'two values swapped',
      text.replace(/^secret: (.*)\nstring: (.*)$/m, 'secret: $2\nstring: $1'),
      'ERR_INTEGRITY',
      /moved here from another key/,
    ],
    ['two entries reordered', text.replace(/^(secret: .*)\n(string: .*)$/m, '$2\n$1'), 'ERR_INTEGRITY', /MAC mismatch/],
    [
      'a value copied over another',
      text.replace(/^(int: )(.*)$/m, (_m, k) => k + text.match(/^float: (.*)$/m)![1]),
      'ERR_INTEGRITY',
      /moved here from another key/,
    ],
    ['the MAC altered', flip(text, '  mac: ENC[AES256_GCM,data:'), 'ERR_INTEGRITY', /MAC mismatch/],
    ['the MAC removed', text.replace(/^ {2}mac: .*\n/m, ''), 'ERR_INTEGRITY', /malformed SOPS metadata: sops has no mac/],
    [
      'lastmodified altered',
      text.replace('lastmodified: "2024-03-25T22:08:10Z"', 'lastmodified: "2024-03-25T22:08:11Z"'),
      'ERR_INTEGRITY',
      /MAC mismatch/,
    ],
    [
      'mac_only_encrypted switched on',
      text.replace('  unencrypted_suffix', '  mac_only_encrypted: true\n  unencrypted_suffix'),
      'ERR_INTEGRITY',
      /MAC mismatch/,
    ],
    [
      'the unencrypted suffix changed',
      text.replace('unencrypted_suffix: _unencrypted', 'unencrypted_suffix: ecret'),
      'ERR_INTEGRITY',
      /MAC mismatch/,
    ],
    [
      'a second selection rule added',
      text.replace('  unencrypted_suffix', '  encrypted_regex: ^x$\n  unencrypted_suffix'),
      'ERR_INTEGRITY',
      /more than one of encrypted_suffix/,
    ],
    [
      'the age key entry altered',
      flip(
        text,
        'enc: |\n        -----BEGIN AGE ENCRYPTED FILE-----\n        YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBEaC9kMkV4d3FCWHlKN0Iz\n        dkxW',
      ),
      'ERR_DECRYPT',
      /the SOPS key entry was altered/,
    ],
    [
      'the age recipient altered',
      text.replace(`recipient: ${AGE_RECIPIENT}`, `recipient: ${AGE_RECIPIENT.slice(0, -1)}x`),
      'ERR_NO_KEY',
      /no key for this SOPS file/,
    ],
    [
      'an unknown format version',
      text.replace('version: 3.8.1', 'version: 4.0.0'),
      'ERR_VERSION',
      /unsupported SOPS format version "4.0.0"/,
    ],
  ]

  it.each(variants)('%s', async (_name, variant, code, message) => {
    expect(variant).not.toBe(text)
    const err = await failure(decrypt(variant, 'secret.enc.yaml'))
    expect([err.code, err.exitCode]).toEqual([code, 3])
    expect(err.message).toMatch(message)
    expect(err.where.file).toBe('secret.enc.yaml')
    expect(err.message).not.toMatch(/this is a secret/)
  })

  gpgTool.it('what SOPS does not protect: the key names of unencrypted values (documented, not detected)', async () => {
    const rel = `${PGP_FIXTURES}/example.yaml`
    const renamed = read(rel).replace('somelist_unencrypted:', 'otherlist_unencrypted:')
    expect(parse(await decrypt(renamed, rel)).otherlist_unencrypted).toEqual(expected(rel).somelist_unencrypted)
  })

  it("names where: the document and the value's keys", async () => {
    const err = await failure(decrypt(flip(text, 'value: ENC[AES256_GCM,data:'), 'secret.enc.yaml'))
    expect(err.where).toEqual({file: 'secret.enc.yaml', document: 1, key: 'complex.value'})
  })

  gpgTool.it('a PGP key entry altered, or naming a key whose secret gpg lacks', async () => {
    const pgpText = read(`${PGP_FIXTURES}/format.enc.yaml`)
    const altered = await failure(
      decrypt(
        flip(
          pgpText,
          'wcBMAyUpShfNkFB/AQf/b1Bdb5X/56d4Oe/5ZoEvKmjN68fr5n9c7gK8qW8Y+Q/L\n            vbfY+l/3HDta5fHHe1RIvyHle/Zgrh1PcQELvhPwsp2nW3NSPsCOCvemziNv7b2b\n            c57D',
        ),
        'format.enc.yaml',
      ),
    )
    expect([altered.code, altered.exitCode]).toEqual(['ERR_DECRYPT', 3])
    const other = await failure(decrypt(pgpText.replace(SOPS_KEY_1, 'B611A2F9F11D0FF82568805119F9B5DAEA91FF86'), 'format.enc.yaml'))
    expect([other.code, other.exitCode]).toEqual(['ERR_NO_KEY', 3])
  })

  it('refuses what sops cannot have written: aliases, merge keys, tags, non-string keys (exit 2)', async () => {
    const cases: [string, RegExp][] = [
      [text.replace('secret: ENC', 'secret: &a ENC').replace(/^string: .*$/m, 'string: *a'), /aliases are not supported/],
      [text.replace(/^int: .*$/m, 'int: !!str x'), /explicit YAML tags/],
      [text.replace(/^int: /m, '12: '), /the key "12" reads as a int in YAML 1.2/],
    ]
    for (const [variant, message] of cases) {
      const err = await failure(() => parseSops(variant))
      expect([err.code, err.exitCode, err.message]).toEqual(['ERR_INPUT', 2, expect.stringMatching(message)])
    }
    // Documents without a sops entry are not read at all (a stream may hold kseal's, kubesec's, plain ones).
    const mixed = parseSops(`- a\n- b\n---\nx: &a 1\ny: *a\n---\n${text}`)
    expect(mixed.groups.map((g) => g.documents)).toEqual([[2]])
  })
})

/** A data key, keys and a clock for sealing files in tests (no recipient needed: the tests open them with the key). */
const DATA_KEY = Buffer.alloc(32, 7)
const ageEntry = async () => {
  const b = new Backends({env: env(), cwd: tmp, now: () => new Date()})
  const entries = await new SopsMasterKeys(b).wrap([{kind: 'age', recipient: AGE_RECIPIENT}], DATA_KEY, new Date())
  await b.close()
  return entries
}

describe('untrusted metadata and structure are bounded', () => {
  const text = read(`${AGE_FIXTURES}/secret.enc.yaml`)
  const refused = (variant: string) => failure(() => parseSops(variant, {file: 'x.yaml'}))

  it('caps key entries, entry sizes, key groups and nesting depth', async () => {
    const entry = '    - recipient: age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr\n      enc: x\n'
    expect((await refused(text.replace('  age:\n', '  age:\n' + entry.repeat(65)))).message).toMatch(/more than 64 age entries/)
    expect(
      (await refused(text.replace('  age:\n', `  age:\n    - recipient: x\n      enc: "${'A'.repeat(17 * 1024)}"\n`))).message,
    ).toMatch(/enc is too long/)
    const deep = Array.from({length: 70}, (_, i) => '  '.repeat(i) + `k${i}:`).join('\n') + ' v\n'
    const err = await refused(deep + text.slice(text.indexOf('sops:')))
    expect([err.code, err.message]).toEqual(['ERR_INPUT', expect.stringMatching(/nested deeper than 64 levels/)])
  })

  it('tries a bounded number of paths for an encrypted comment', async () => {
    // A comment sealed under the path of a collection far from it is not found (and not an error).
    const many = Array.from({length: 12}, (_, i) => `m${i}:\n  k: v${i}\n`).join('')
    const sealed = encryptSops(many, {dataKey: DATA_KEY, entries: await ageEntry(), rules: {}})
    const {encryptEnc} = await import('../src/formats/sops/cipher.js')
    const far = '#' + encryptEnc(DATA_KEY, Buffer.from(' far away'), 'm11:', 'comment') + '\n'
    const near = '#' + encryptEnc(DATA_KEY, Buffer.from(' close by'), 'm0:', 'comment') + '\n'
    const out = await decrypt(near + far + sealed, 'x.yaml')
    expect(out.startsWith('# close by\n#ENC[AES256_GCM,')).toBe(true)
  })
})

describe('selection rules and mac_only_encrypted', () => {
  const doc = 'public: open\nsecret_key: s3cr3t\nnested:\n  data: inner\n  plain_name: visible\n  port: 8080\nlist:\n  - one\n  - true\n'
  const encryptedLocs = (text: string) =>
    Object.entries(flatten(parse(text)))
      .filter(([k, v]) => k !== 'sops' && !k.startsWith('sops.') && String(v).startsWith('ENC['))
      .map(([k]) => k)

  it.each<[RuleSpec, string[]]>([
    [{}, ['public', 'secret_key', 'nested.data', 'nested.plain_name', 'nested.port', 'list.0', 'list.1']],
    [{unencryptedSuffix: '_name'}, ['public', 'secret_key', 'nested.data', 'nested.port', 'list.0', 'list.1']],
    [{encryptedSuffix: '_key'}, ['secret_key']],
    [{encryptedRegex: '^(data|secret_key)$'}, ['secret_key', 'nested.data']],
    [{unencryptedRegex: '^(public|list)$'}, ['secret_key', 'nested.data', 'nested.plain_name', 'nested.port']],
    [{encryptedRegex: '(?i)^NESTED$'}, ['nested.data', 'nested.plain_name', 'nested.port']],
  ])('%j encrypts exactly %j; the file opens and its MAC verifies', async (rules, locs) => {
    const sealed = encryptSops(doc, {dataKey: DATA_KEY, entries: await ageEntry(), rules})
    expect(encryptedLocs(sealed)).toEqual(locs)
    const out = await decrypt(sealed, 'x.yaml')
    expect(parse(out)).toEqual(parse(doc))
    if (!rules.encryptedSuffix && !rules.unencryptedRegex && !rules.encryptedRegex?.startsWith('(?i)'))
      expect(checkSopsMac(sealed, DATA_KEY).ok).toBe(true)
  })

  it('with mac_only_encrypted an unencrypted value may change; without it, that is tampering', async () => {
    const rules = {encryptedRegex: '^data$'}
    const only = encryptSops(doc, {dataKey: DATA_KEY, entries: await ageEntry(), rules, macOnlyEncrypted: true})
    expect(checkSopsMac(only, DATA_KEY).ok).toBe(true)
    expect(parse(await decrypt(only.replace('public: open', 'public: changed'), 'x.yaml')).public).toBe('changed')
    const all = encryptSops(doc, {dataKey: DATA_KEY, entries: await ageEntry(), rules})
    expect((await failure(decrypt(all.replace('public: open', 'public: changed'), 'x.yaml'))).message).toMatch(/MAC mismatch/)
    // The encrypted values stay covered either way.
    expect(
      (
        await failure(
          decrypt(
            only.replace(/^( {2}data: .*)$/m, '$1').replace(/(data: ENC\[AES256_GCM,data:)(.)/, (_m, a, c) => a + (c === 'A' ? 'B' : 'A')),
            'x.yaml',
          ),
        )
      ).code,
    ).toBe('ERR_INTEGRITY')
  })

  it("reads the file's regular expressions as RE2, as sops does: Go syntax, linear time, bounded size (else exit 2)", () => {
    // What a backtracking engine would take seconds or years on: linear in RE2, whatever the key.
    const long = 'a'.repeat(5000) + 'b'
    for (const evil of ['(a|a)*$x', '^.*.*.*.*x$', '(a+)+$', '^(x|y*)*z']) expect(goRegex(evil, 'encrypted_regex').test(long)).toBe(false)
    // Go's syntax, which JavaScript reads differently or not at all.
    expect(goRegex('^[[:alpha:]]+$', 'encrypted_regex').test('data')).toBe(true)
    expect(goRegex('^\\pL+$', 'encrypted_regex').test('λx')).toBe(true)
    expect(goRegex('(?i)^DATA$', 'encrypted_regex').test('data')).toBe(true)
    expect(goRegex('^\\Qa.b\\E$', 'encrypted_regex').test('a.b')).toBe(true)
    expect(goRegex('^\\Qa.b\\E$', 'encrypted_regex').test('axb')).toBe(false)
    expect(goRegex('^\\-x\\_\\:$', 'encrypted_regex').test('-x_:')).toBe(true)
    expect(goRegex('^(data|stringData)$', 'encrypted_regex').test('stringData')).toBe(true)
    // Not RE2 (lookaround, backreferences), or too long: refused, naming the field.
    for (const bad of ['(?=a)b', '(a)\\1', 'a'.repeat(600), '(']) {
      expect(() => goRegex(bad, 'encrypted_regex')).toThrow(
        expect.objectContaining({code: 'ERR_INPUT', exitCode: 2, message: expect.stringContaining('SOPS encrypted_regex')}),
      )
    }
  })

  it('refuses comment-based rules and Shamir key groups (exit 2); reads a single key group written as key_groups', async () => {
    const text = read(`${AGE_FIXTURES}/secret.enc.yaml`)
    const comment = await failure(() =>
      parseSops(text.replace('  unencrypted_suffix: _unencrypted\n', '  encrypted_comment_regex: sops:enc\n')),
    )
    expect([comment.code, comment.message]).toEqual(['ERR_INPUT', expect.stringMatching(/encrypted_comment_regex are not supported/)])
    const doc = parseDocument(text)
    const age = doc.getIn(['sops', 'age'])
    doc.deleteIn(['sops', 'age'])
    doc.setIn(['sops', 'key_groups'], doc.createNode([{age}]))
    expect(parse(await decrypt(doc.toString(), 'g.yaml'))).toEqual(expected(`${AGE_FIXTURES}/secret.enc.yaml`))
    doc.setIn(['sops', 'key_groups'], doc.createNode([{age}, {age}]))
    doc.setIn(['sops', 'shamir_threshold'], 2)
    const shamir = await failure(decrypt(doc.toString(), 'g.yaml'))
    expect([shamir.code, shamir.exitCode, shamir.message]).toEqual([
      'ERR_INPUT',
      2,
      expect.stringMatching(/2 key groups \(Shamir secret sharing\), which kseal does not support/),
    ])
  })
})

describe('multi-document files', () => {
  const two = 'a: one\n---\nb: two\n'

  it('one sops block over several documents: one MAC over all of them, as sops writes it', async () => {
    const sealed = encryptSops(two, {dataKey: DATA_KEY, entries: await ageEntry(), rules: {}})
    expect(sealed.match(/^sops:$/gm)).toHaveLength(2)
    expect(await decrypt(sealed, 'two.yaml')).toBe(two)
    const [first] = sealed.split('---\n')
    expect((await failure(decrypt(first, 'two.yaml'))).message).toMatch(/MAC mismatch/)
    const swapped = sealed.split('---\n').reverse().join('---\n')
    expect((await failure(decrypt(swapped, 'two.yaml'))).message).toMatch(/MAC mismatch/)
  })

  it('documents from separate files (a kustomize stream) each verify on their own; plain documents pass through', async () => {
    const a = encryptSops('a: one\n', {dataKey: DATA_KEY, entries: await ageEntry(), rules: {}})
    const b = encryptSops('b: two\n', {
      dataKey: Buffer.alloc(32, 9),
      entries: await (async () => {
        const bk = new Backends({env: env(), cwd: tmp, now: () => new Date()})
        const e = await new SopsMasterKeys(bk).wrap([{kind: 'age', recipient: AGE_RECIPIENT}], Buffer.alloc(32, 9), new Date())
        await bk.close()
        return e
      })(),
      rules: {},
    })
    const stream = `${a}---\nkind: ConfigMap\nplain: yes\n---\n${b}---\n${a}`
    const opened = await open(stream, 'stream.yaml')
    expect(opened.groups.map((g) => g.documents)).toEqual([[0, 3], [2]])
    expect(decryptedText(opened)).toBe('a: one\n---\nkind: ConfigMap\nplain: yes\n---\nb: two\n---\na: one\n')
  })
})

function flatten(v: unknown, prefix = ''): Record<string, unknown> {
  if (v === null || typeof v !== 'object') return {[prefix]: v}
  return Object.assign({}, ...Object.entries(v as object).map(([k, x]) => flatten(x, prefix ? `${prefix}.${k}` : k)))
}
