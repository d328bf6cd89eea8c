/**
 * The tamper matrix: every way of altering an encrypted file that the envelope must catch. Each
 * case gives exit 3, one clear line naming the file and document, and no output at all.
 */
import {lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {cleanEnv, FIXTURES, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './support/cli.js'

const PLAIN = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  alpha: YWxwaGEtc2VjcmV0
  beta: YmV0YS1zZWNyZXQ=
stringData:
  gamma: gamma-secret
---
apiVersion: v1
kind: Secret
metadata:
  name: cache
  namespace: prod
data:
  alpha: b3RoZXItYWxwaGE=
`

let dir: string
let enc: string
/** The same, encrypted for two recipients (team and other). */
let enc2: string

const token = (doc: number, key: string) => {
  const d = enc.split('---\n')[doc]
  return new RegExp(`\\n  ${key}: (kseal:v2:[A-Za-z0-9_-]+)`).exec(d)![1]
}
/** Applies a change to the first document only. */
const inFirst = (f: (d: string) => string) => (e: string) => {
  const [a, ...rest] = e.split('---\n')
  return [f(a), ...rest].join('---\n')
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-tamper-'))
  const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  enc = r.stdout
  const r2 = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`, '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})
  expect(r2.code).toBe(0)
  enc2 = r2.stdout
})

/** The second recipient entry (other's) of the first document of enc2. */
const OTHER_ENTRY = /( {4}- backend: "rsa"\n {6}kid: "886d5b01b46231a8"\n {6}wrapped: ")([^"]+)("\n)/
const ATTACKER_AGE = 'age1fwj0v0ehul0kjmnv0drtk6azlhnqk6tcpak8cd4tx6nn5h3n4qpsgv8hc3'
/** Applies a change to the first document of enc2 instead of enc. */
const in2 = (f: (d: string) => string) => () => () => inFirst(f)(enc2)

const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1)

const INTEGRITY = /integrity check failed: .*a recipient entry was added, removed or altered/
const cases: [string, () => (e: string) => string, RegExp][] = [
  ['a flipped ciphertext byte', () => (e) => e.replace(token(0, 'alpha'), flip(token(0, 'alpha'), 30)), /data\.alpha: cannot decrypt/],
  [
    'two values swapped',
    () => inFirst((d) => d.replace(token(0, 'alpha'), 'X').replace(token(0, 'beta'), token(0, 'alpha')).replace('X', token(0, 'beta'))),
    /data\.(alpha|beta): cannot decrypt/,
  ],
  [
    'a value moved to another key',
    () => inFirst((d) => d.replace(`  alpha: ${token(0, 'alpha')}\n`, '').replace(token(0, 'beta'), token(0, 'alpha'))),
    /data\.beta: cannot decrypt/,
  ],
  ['a key renamed', () => inFirst((d) => d.replace('  alpha: kseal', '  alpha2: kseal')), /data\.alpha2: cannot decrypt/],
  ['a key removed', () => inFirst((d) => d.replace(`  beta: ${token(0, 'beta')}\n`, '')), /integrity check failed/],
  [
    'a key added (copied token)',
    () => inFirst((d) => d.replace('\ndata:\n', `\ndata:\n  delta: ${token(0, 'alpha')}\n`)),
    /data\.delta: cannot decrypt/,
  ],
  ['a plaintext key added', () => inFirst((d) => d.replace('\ndata:\n', '\ndata:\n  delta: ZGVsdGE=\n')), /data\.delta: is not encrypted/],
  [
    'a value copied from another Secret',
    () => inFirst((d) => d.replace(token(0, 'alpha'), token(1, 'alpha'))),
    /data\.alpha: cannot decrypt/,
  ],
  [
    'the namespace changed (strict scope)',
    () => inFirst((d) => d.replace('namespace: prod', 'namespace: staging')),
    /encrypted as prod\/db, now staging\/db: .*kustomize base.*--scope/,
  ],
  ['the name changed (strict scope)', () => inFirst((d) => d.replace('name: db', 'name: db2')), /encrypted as prod\/db, now prod\/db2: /],
  [
    'the namespace changed in the manifest and in the envelope',
    () => inFirst((d) => d.replace('namespace: prod', 'namespace: staging').replace('namespace: "prod"', 'namespace: "staging"')),
    /cannot decrypt the data key/,
  ],
  [
    'the recorded namespace opened (openNamespace: true)',
    () => inFirst((d) => d.replace('namespace: "prod"', 'openNamespace: true')),
    /cannot decrypt the data key/,
  ],
  [
    'the scope changed',
    () => inFirst((d) => d.replace('scope: "strict"', 'scope: "cluster"').replace(/ {2}namespace: "prod"\n {2}name: "db"\n/, '')),
    /cannot decrypt the data key/,
  ],
  [
    'the recipient entry altered',
    () => inFirst((d) => d.replace(/wrapped: "(.)/, (_m, c) => `wrapped: "${c === 'A' ? 'B' : 'A'}`)),
    /cannot decrypt the data key/,
  ],
  ['the recipient key id altered', () => inFirst((d) => d.replace(/kid: "[0-9a-f]{4}/, 'kid: "0000')), /no key for this Secret/],
  [
    'the recipient entry removed',
    () => inFirst((d) => d.replace(/ {2}recipients:\n( {4}.*\n)+/, '  recipients: []\n')),
    /malformed kseal envelope: no recipients/,
  ],
  [
    "a recipient added (an attacker's age key)",
    () =>
      inFirst((d) =>
        d.replace(/( {2}mac: )/, `    - backend: "age"\n      kid: "${ATTACKER_AGE}"\n      wrapped: "YWdlLWVuY3J5cHRpb24="\n$1`),
      ),
    INTEGRITY,
  ],
  ['another recipient removed (break-glass entry dropped)', in2((d) => d.replace(OTHER_ENTRY, '')), INTEGRITY],
  ["another recipient's wrapped key altered", in2((d) => d.replace(OTHER_ENTRY, (_m, a, w, z) => a + flip(w, 5) + z)), INTEGRITY],
  ["another recipient's key id altered", in2((d) => d.replace('kid: "886d5b01b46231a8"', 'kid: "886d5b01b46231a9"')), INTEGRITY],
  ['a field added to a recipient entry', in2((d) => d.replace(OTHER_ENTRY, (_m, a, w, z) => `${a}${w}"\n      key: "x${z}`)), INTEGRITY],
  ['the MAC altered', () => inFirst((d) => d.replace(/mac: "(.)/, (_m, c) => `mac: "${c === 'A' ? 'B' : 'A'}`)), /integrity check failed/],
  [
    'a truncated value',
    () => (e) => e.replace(token(0, 'gamma'), token(0, 'gamma').slice(0, 20)),
    /stringData\.gamma: (cannot decrypt|encrypted value is truncated)/,
  ],
  ['a downgrade to format 1 (version: 1)', () => inFirst((d) => d.replace('version: 2', 'version: 1')), /cannot decrypt the data key/],
  [
    'a downgrade to format 1 with format 1 tokens',
    () => inFirst((d) => d.replace('version: 2', 'version: 1').replace(/kseal:v2:/g, 'kseal:v1:')),
    /cannot decrypt the data key/,
  ],
  ['an unknown format version', () => inFirst((d) => d.replace('version: 2', 'version: 3')), /unsupported kseal format version 3/],
  ['the envelope removed', () => inFirst((d) => d.replace(/kseal:\n( {2}.*\n)+/, '')), /encrypted values but no kseal envelope/],
]

describe('tamper matrix (kseal decrypt)', () => {
  it.each(cases)('%s → exit 3, one line, no output', async (_name, make, message) => {
    const tampered = make()(enc)
    expect(tampered).not.toBe(enc)
    expect(tampered).not.toBe(enc2)
    const file = path.join(dir, 'secret.yaml')
    writeFileSync(file, tampered)
    const r = await kseal(['decrypt', '-k', TEAM_KEY, file])
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^kseal: ${file}: document 1 \\(Secret \\w+/\\w+\\): `))
    expect(lines[0]).toMatch(message)
    // In place: the file is left exactly as it was.
    const inPlace = await kseal(['decrypt', '-i', '-k', TEAM_KEY, file])
    expect(inPlace.code).toBe(3)
    expect(readFileSync(file, 'utf8')).toBe(tampered)
  })

  it('a wrong key → exit 3, names the recipient it needs', async () => {
    const r = await kseal(['decrypt', '-k', OTHER_KEY], {input: enc})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/\(stdin\): document 1 \(Secret prod\/db\): no key for this Secret: it is encrypted for rsa:d5326737ee564566/)
  })

  it('the untampered file decrypts', async () => {
    const r = await kseal(['decrypt', '-k', TEAM_KEY], {input: enc})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(PLAIN)
  })
})

describe('format 1 stays readable and cannot be passed off as format 2', () => {
  const v1 = () => readFileSync(path.join(FIXTURES, 'vectors', 'v1-secret.json'), 'utf8')
  it('a format 1 file decrypts; editing its version to 2 is refused', async () => {
    expect((await kseal(['decrypt', '-k', TEAM_KEY], {input: v1()})).code).toBe(0)
    const up = await kseal(['decrypt', '-k', TEAM_KEY], {input: v1().replace('"version": 1', '"version": 2')})
    expect(up.code).toBe(3)
    expect(up.stdout).toBe('')
    expect(up.stderr).toMatch(/malformed kseal envelope: strict scope records either namespace or openNamespace: true/)
    const dressed = v1().replace('"version": 1', '"version": 2, "namespace": "default", "name": "json-secret"')
    const r = await kseal(['decrypt', '-k', TEAM_KEY], {input: dressed})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/cannot decrypt the data key/)
  })
})

describe('files: decrypted files are private, links are never followed or replaced', () => {
  it('decrypt -i writes the plaintext file with mode 0600, whatever its mode was', async () => {
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'kseal-mode-')), 'db.yaml')
    writeFileSync(f, enc, {mode: 0o644})
    const r = await kseal(['decrypt', '-i', '-k', TEAM_KEY, f])
    expect(r.code).toBe(0)
    expect(readFileSync(f, 'utf8')).toBe(PLAIN)
    expect(statSync(f).mode & 0o777).toBe(0o600)
  })

  it('a directory walk skips a symlink to a file outside the tree (one note), and never replaces it', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'kseal-links-'))
    const outside = path.join(root, 'outside.yaml')
    writeFileSync(outside, enc)
    const tree = path.join(root, 'tree')
    mkdirSync(tree)
    writeFileSync(path.join(tree, 'real.yaml'), enc)
    symlinkSync(outside, path.join(tree, 'link.yaml'))
    const r = await kseal(['decrypt', '-i', '-k', TEAM_KEY, tree])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe(`kseal: skipped 1 symbolic link (directory walks never follow links): ${path.join(tree, 'link.yaml')}\n`)
    expect(readFileSync(path.join(tree, 'real.yaml'), 'utf8')).toBe(PLAIN)
    expect(lstatSync(path.join(tree, 'link.yaml')).isSymbolicLink()).toBe(true)
    expect(readFileSync(outside, 'utf8')).toBe(enc)
    // Named explicitly, a link is read (to stdout) but never replaced in place.
    expect((await kseal(['decrypt', '-k', TEAM_KEY, path.join(tree, 'link.yaml')])).stdout).toBe(PLAIN)
    const inPlace = await kseal(['decrypt', '-i', '-k', TEAM_KEY, path.join(tree, 'link.yaml')])
    expect(inPlace.code).toBe(2)
    expect(inPlace.stderr).toMatch(/link\.yaml: is a symbolic link: kseal never replaces a link in place/)
    expect(lstatSync(path.join(tree, 'link.yaml')).isSymbolicLink()).toBe(true)
    expect(readFileSync(outside, 'utf8')).toBe(enc)
  })
})

describe('YAML merge keys in Secrets are refused by every command that reads them (exit 2, naming file, document and Secret)', () => {
  // kubectl resolves the merge and would apply `password: x`, a value kseal never sees as one.
  const merged = (e: string) => inFirst((d) => d.replace('\nstringData:\n', '\n<<: {stringData: {password: planted}}\nstringData:\n'))(e)
  const tagged = (e: string) => inFirst((d) => d.replace('\nkseal:\n', '\n? !!merge <<\n: {type: Opaque}\nkseal:\n'))(e)
  const viaMerge =
    'base: &base\n  apiVersion: v1\n  kind: Secret\n  metadata: {name: made, namespace: prod}\n  stringData: {password: plain}\n<<: *base\n'
  const file = (name: string, text: string) => {
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'kseal-merge-')), name)
    writeFileSync(f, text)
    return f
  }

  it.each([
    ['decrypt', (f: string) => ['decrypt', '-k', TEAM_KEY, f]],
    ['decrypt -i', (f: string) => ['decrypt', '-i', '-k', TEAM_KEY, f]],
    ['encrypt -i', (f: string) => ['encrypt', '-i', '-k', TEAM_KEY, '-r', `rsa:${TEAM_CERT}`, f]],
    ['rotate -i', (f: string) => ['rotate', '-i', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`, f]],
    ['check', (f: string) => ['check', f]],
    ['inspect', (f: string) => ['inspect', f]],
    ['seal', (f: string) => ['seal', '--cert', OTHER_CERT, f]],
    ['textconv (shows the file as it is)', (f: string) => ['textconv', '-k', TEAM_KEY, f]],
  ])('%s', async (name, args) => {
    for (const text of [merged(enc), tagged(enc)]) {
      const f = file('secret.yaml', text)
      const r = await kseal(args(f))
      if (name.startsWith('textconv')) {
        expect(r.stdout).toBe(text)
        continue
      }
      expect([name, r.code]).toEqual([name, 2])
      expect(r.stderr).toMatch(
        new RegExp(
          `${f}: document 1 \\(Secret prod/db\\): uses a YAML merge key \\(<<\\) at line \\d+: kubectl would merge in values that kseal does not see`,
        ),
      )
      expect(readFileSync(f, 'utf8')).toBe(text)
    }
    if (!name.startsWith('textconv')) {
      const r = await kseal(args(file('made.yaml', viaMerge)))
      expect([name, r.code, r.stderr]).toEqual([name, 2, expect.stringMatching(/\(Secret prod\/made\): uses a YAML merge key/)])
    }
  })

  it('unseal, --merge-into and the KRM function refuse them too', async () => {
    const sealed = (await kseal(['seal', '--cert', OTHER_CERT], {input: PLAIN.split('---\n')[0]})).stdout
    const withMerge = sealed.replace('\nspec:\n', '\n<<: {kind: SealedSecret}\nspec:\n')
    const f = file('db.sealed.yaml', withMerge)
    const un = await kseal(['unseal', '-k', OTHER_KEY, f])
    expect(un.code).toBe(2)
    expect(un.stderr).toMatch(/\(Secret prod\/db\): uses a YAML merge key/)
    const m = await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', f], {
      input: 'apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {a: b}\n',
    })
    expect(m.code).toBe(2)
    expect(readFileSync(f, 'utf8')).toBe(withMerge)
    const rl =
      'apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n' +
      merged(enc)
        .split('---\n')[0]
        .replace(/^/gm, '  ')
        .replace(/^ {2}apiVersion/, '- apiVersion')
    const krm = await kseal(['krm'], {input: rl, env: cleanEnv({KSEAL_KEYS: TEAM_KEY})})
    expect(krm.code).toBe(2)
    expect(krm.stderr).toMatch(/uses a YAML merge key/)
    expect(krm.stdout).not.toContain('alpha-secret')
  })
})
