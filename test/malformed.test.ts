/** Malformed input: one line saying what and where, a distinct exit code, and the input untouched. */
import {spawnSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {kseal, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {tool} from './support/tools.js'

let dir: string
const SECRET = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: ok\n  namespace: default\nstringData:\n  a: plain-value\n'

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-malformed-'))
})

function file(name: string, content: string | Buffer): string {
  const f = path.join(dir, name)
  writeFileSync(f, content)
  return f
}

const cases: [string, string | Buffer, number, RegExp][] = [
  [
    'broken YAML',
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n data: [unclosed\n',
    2,
    /document 1: malformed YAML at line \d+, column \d+/,
  ],
  [
    'a Helm template',
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\ndata:\n  password: {{ .Values.password | b64enc }}\n',
    2,
    /malformed YAML|not a string/,
  ],
  ['a kind-less object with data', 'metadata:\n  name: x\ndata:\n  a: Yg==\n', 2, /document 1: has data but no kind\/apiVersion/],
  [
    'a Secret with the wrong apiVersion',
    'apiVersion: v2\nkind: Secret\nmetadata:\n  name: x\ndata:\n  a: Yg==\n',
    2,
    /must have apiVersion v1/,
  ],
  [
    'invalid base64 in data',
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: d\ndata:\n  password: not base64!\n',
    2,
    /document 1 \(Secret d\/x\): data\.password: not valid base64/,
  ],
  [
    'a stringData value that YAML 1.1 reads as a bool',
    'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: d\nstringData:\n  enabled: yes\n',
    2,
    /stringData\.enabled: value is not a string \(it reads as boolean; quote it\)/,
  ],
  ['a binary file', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0, 0]), 2, /not a text file/],
  [
    'a strict-scope Secret without a name',
    'apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: d\nstringData:\n  a: b\n',
    2,
    /needs metadata\.name/,
  ],
]

describe('malformed input (kseal encrypt -i)', () => {
  it.each(cases)('%s', async (name, content, code, message) => {
    const f = file(name.replace(/\W+/g, '-') + '.yaml', content)
    const before = readFileSync(f)
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])
    expect(r.code).toBe(code)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(f)
    expect(lines[0]).toMatch(message)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect(readFileSync(f)).toEqual(before)
  })

  it('a ConfigMap with data passes through untouched', async () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  password: not-a-secret\n'
    const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: cm})
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(cm)
  })

  it('a missing file → exit 1, other files still processed and reported', async () => {
    const good = file('good.yaml', SECRET)
    const bad = file('bad.yaml', 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: d\ndata:\n  a: "@@"\n')
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, good, path.join(dir, 'missing.yaml'), bad])
    expect(r.stderr).toContain(`${path.join(dir, 'missing.yaml')}: cannot read: no such file or directory`)
    expect(r.stderr).toContain(`${bad}: document 1 (Secret d/x): data.a: not valid base64`)
    expect(r.code).toBe(2) // the most severe of 1 and 2
    expect(readFileSync(good, 'utf8')).toMatch(/a: kseal:v2:/)
  })

  it('a directory with no manifests → exit 2', async () => {
    const empty = path.join(dir, 'empty-dir')
    mkdirSync(empty)
    writeFileSync(path.join(empty, 'notes.txt'), 'hello')
    const r = await kseal(['decrypt', empty])
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe(`kseal: ${empty}: no manifests (*.yaml, *.yml, *.json) in this directory`)
  })

  it('an unreadable file → exit 1, one line', async () => {
    const f = file('unreadable.yaml', SECRET)
    chmodSync(f, 0o000)
    chmodSync(dir, 0o755)
    // Root reads anything: run as an unprivileged user when the tests run as root.
    const asUser = process.getuid?.() === 0 ? {uid: 65534, gid: 65534} : {}
    const r = await kseal(['decrypt', f], asUser)
    expect(r.code).toBe(1)
    expect(r.stderr.trim()).toBe(`kseal: ${f}: cannot read: permission denied`)
    expect(statSync(f).mode & 0o777).toBe(0)
  })

  it('an unknown flag → exit 2 and a pointer to --help', async () => {
    const r = await kseal(['decrypt', '--no-such-flag'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/Nonexistent flag: --no-such-flag/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  it('a recipient that is not a key URI → exit 2', async () => {
    const r = await kseal(['encrypt', '-r', 'team.crt'], {input: SECRET})
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe('kseal: recipient "team.crt" is not a key URI (expected one of: rsa:..., awskms:..., age:..., pgp:...)')
  })

  it('encrypt with no recipient → exit 2 saying how to add one', async () => {
    const r = await kseal(['encrypt'], {input: SECRET})
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/no recipients: pass -r KEY_URI \(e\.g\. -r rsa:team\.crt\), or add a \.kseal\.yaml/)
  })

  it('decrypt with a key that is not a key → exit 2', async () => {
    const r = await kseal(['decrypt', '-k', TEAM_CERT], {input: SECRET})
    expect(r.code).toBe(0) // nothing encrypted: the key is never needed
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: SECRET})
    const r2 = await kseal(['decrypt', '-k', TEAM_CERT], {input: enc.stdout})
    expect(r2.code).toBe(2)
    expect(r2.stderr).toMatch(/not a private key kseal can use/)
    void TEAM_KEY
  })
})

describe('JSON is read strictly, as kubectl reads it', () => {
  const JSON_SECRET =
    '{\n  "apiVersion": "v1",\n  "kind": "Secret",\n  "metadata": {"name": "j", "namespace": "d"},\n  "stringData": {"a": "s3cr3t-json",}\n}\n'

  it.each([
    ['a .json file with a trailing comma', 'trailing.json', JSON_SECRET, 'line 5, column 37: a trailing comma (JSON allows none)'],
    [
      'a .yaml file that starts with { (kubectl reads it as JSON)',
      'brace.yaml',
      JSON_SECRET,
      'line 5, column 37: a trailing comma (JSON allows none)',
    ],
    [
      'JSON behind a byte-order mark, with a comment',
      'bom.json',
      '\uFEFF{"apiVersion": "v1", // core\n "kind": "Secret", "metadata": {"name": "j"}, "stringData": {"a": "s3cr3t-json"}}\n',
      'line 1, column 22: a comment (JSON has none)',
    ],
    [
      'unquoted keys',
      'keys.json',
      '{apiVersion: v1, kind: Secret, metadata: {name: j}, stringData: {a: s3cr3t-json}}\n',
      'line 1, column 2: an unquoted key (JSON keys are double-quoted strings)',
    ],
    [
      'a .json file that holds YAML',
      'yaml.json',
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: j\nstringData:\n  a: s3cr3t-json\n',
      'line 1, column 1: not a JSON value (a .json file must hold JSON)',
    ],
  ])('%s: exit 2, where and what (never the text), file untouched', async (_, name, content, what) => {
    const f = file(name, content)
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])
    expect(r).toEqual({code: 2, stdout: '', stderr: `kseal: ${f}: malformed JSON at ${what}\n`})
    expect(readFileSync(f, 'utf8')).toBe(content)
  })

  it('stdin that starts with { is JSON too, for every command that reads manifests', async () => {
    for (const args of [['encrypt', '-r', `rsa:${TEAM_CERT}`], ['decrypt'], ['inspect'], ['seal', '--cert', TEAM_CERT], ['check', '-']]) {
      const r = await kseal(args, {input: JSON_SECRET})
      expect({args, code: r.code, stdout: r.stdout, stderr: r.stderr}).toEqual({
        args,
        code: 2,
        stdout: '',
        stderr: 'kseal: (stdin): malformed JSON at line 5, column 37: a trailing comma (JSON allows none)\n',
      })
    }
  })

  it('valid JSON, and YAML with flow collections after its first key, are read as before', async () => {
    for (const text of [
      JSON_SECRET.replace('",}', '"}'),
      'apiVersion: v1\nkind: Secret\nmetadata: {name: j, namespace: d,}\nstringData: {a: s3cr3t-json,}\n',
    ]) {
      const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: text})
      expect(r).toMatchObject({code: 0, stderr: ''})
      expect(r.stdout).toMatch(/kseal:v2:/)
    }
  })

  tool('kubectl').it('kubectl itself refuses the trailing comma that kseal refuses', () => {
    const f = file('kubectl-trailing.json', JSON_SECRET)
    const r = spawnSync('kubectl', ['label', '--local', '-f', f, 'x=y', '-o', 'json'], {encoding: 'utf8'})
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/invalid character '}'/)
  })
})

describe('YAML is read as kubectl reads it (go-yaml v2 through sigs.k8s.io/yaml)', () => {
  const secret = (body: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: k\n  namespace: d\nstringData:\n${body}`

  it('dates, times and sexagesimal-looking values are strings to kubectl: encrypted, and decrypted byte for byte', async () => {
    const text = secret('  day: 2024-01-01\n  time: 12:30:45\n  short: 1:30\n  big: 0xFFFFFFFFFFFFFFFFFF\n')
    const enc = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: text})
    expect(enc).toMatchObject({code: 0, stderr: ''})
    expect(enc.stdout.match(/kseal:v2:/g)).toHaveLength(4)
    expect(await kseal(['decrypt', '-k', TEAM_KEY], {input: enc.stdout})).toEqual({code: 0, stdout: text, stderr: ''})
  })

  it.each([
    ['0o755', '  mode: 0o755\n', 'stringData.mode: value is not a string (it reads as number; quote it)'],
    ['0755', '  mode: 0755\n', 'stringData.mode: value is not a string (it reads as number; quote it)'],
    ['1_000', '  count: 1_000\n', 'stringData.count: value is not a string (it reads as number; quote it)'],
    ['an unquoted key n (a boolean to kubectl)', '  n: x\n', 'stringData.n: key reads as "false" to Kubernetes; quote it'],
    ['y', '  flag: y\n', 'stringData.flag: value is not a string (it reads as boolean; quote it)'],
    ['an unquoted key yes', '  yes: x\n', 'stringData.yes: key reads as "true" to Kubernetes; quote it'],
    ['an unquoted key 1e6', '  1e6: x\n', 'stringData.1e6: key reads as "1e+06" to Kubernetes; quote it'],
  ])('%s: refused with "quote it", file untouched', async (name, body, message) => {
    const f = file(`kubectl-${name.replace(/\W+/g, '-')}.yaml`, secret(body))
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])
    expect(r).toEqual({code: 2, stdout: '', stderr: `kseal: ${f}: document 1 (Secret d/k): ${message}\n`})
    expect(readFileSync(f, 'utf8')).toBe(secret(body))
  })

  it.each([
    [
      'a raw DEL',
      '  a: "x\x7fy"\n',
      'character U+007F at line 7, column 8 is not allowed in YAML (kubectl refuses the file); write it as an escape in a double-quoted string',
    ],
    [
      'a raw NEL, which kubectl folds to a space even in quotes',
      '  a: "x\x85y"\n',
      "character U+0085 at line 7, column 8 is a line break to kubectl's YAML reader (YAML 1.1), and not to others; write it as an escape in a double-quoted string",
    ],
    [
      'a raw LS in a comment, hiding a key from every reader but kubectl',
      '  a: x # note\u2028  b: hidden\n',
      "character U+2028 at line 7, column 14 is a line break to kubectl's YAML reader (YAML 1.1), and not to others; write it as an escape in a double-quoted string",
    ],
    [
      'a tab that starts a block scalar',
      '  a: |\n    \tx\n',
      "a tab where a block scalar's indentation is read, at line 8, column 5 (kubectl refuses the file); indent with spaces, or write the value double-quoted with \\t",
    ],
  ])('%s: refused, exit 2, file untouched', async (name, body, message) => {
    const f = file(`kubectl-${name.replace(/\W+/g, '-').slice(0, 40)}.yaml`, secret(body))
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, f])
    expect(r).toEqual({code: 2, stdout: '', stderr: `kseal: ${f}: ${message}\n`})
    expect(readFileSync(f, 'utf8')).toBe(secret(body))
  })
})
