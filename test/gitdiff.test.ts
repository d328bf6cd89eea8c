/**
 * `kseal textconv` through a real `git diff` / `git log -p` (diff=kseal in .gitattributes,
 * diff.kseal.textconv set with -c): decrypted changes for a key holder, a key-level summary from
 * the ciphertext alone for everyone else, and never a failed diff.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {BIN, cleanEnv, kseal, OTHER_CERT, OTHER_KEY} from './support/cli.js'

const PLAIN = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  user: admin
  password: s3cr3t
  removed: gone-soon
  cert: |
    line one
    line two
`

let repo: string
let tmp: string
let v1: string
let v2: string

function git(args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync('git', ['-c', `diff.kseal.textconv=${process.execPath} ${BIN} textconv`, ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: cleanEnv({GIT_CONFIG_NOSYSTEM: '1', TMPDIR: tmp, ...env}) as NodeJS.ProcessEnv,
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

/** The changed lines of a diff (without the ---/+++ headers). */
const changes = (diff: string) => diff.split('\n').filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l))

beforeAll(async () => {
  repo = mkdtempSync(path.join(os.tmpdir(), 'kseal-gitdiff-'))
  tmp = path.join(repo, '.tmp')
  mkdirSync(tmp)
  git(['init', '-q', '-b', 'main'])
  git(['config', 'user.email', 'dev@example.com'])
  git(['config', 'user.name', 'Dev'])
  git(['config', 'commit.gpgsign', 'false'])
  writeFileSync(path.join(repo, '.gitattributes'), '*.yaml diff=kseal\n')
  writeFileSync(path.join(repo, '.git', 'info', 'exclude'), '.tmp/\n')
  const enc = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})
  v1 = enc.stdout
  writeFileSync(path.join(repo, 'db.yaml'), v1)
  git(['add', '.'])
  git(['commit', '-q', '-m', 'db'])
  // Change one value, remove one, add one — through kseal edit, which re-encrypts with the Secret's
  // own data key, so every other value keeps its ciphertext. (kseal encrypt only adds values: a value
  // changed or removed by hand is refused, as the MAC over the rest can no longer be checked.)
  const script = path.join(mkdtempSync(path.join(os.tmpdir(), 'kseal-editor-')), 'editor.sh')
  writeFileSync(
    script,
    "#!/bin/sh\nsed -i -e 's/^  password: .*/  password: n3w-pass/' -e '/^  removed: /d' -e 's/^\\(  user: .*\\)$/\\1\\n  added: fresh/' \"$1\"\n",
    {mode: 0o755},
  )
  const r = await kseal(['edit', '-k', OTHER_KEY, path.join(repo, 'db.yaml')], {env: cleanEnv({EDITOR: script})})
  expect(r.stderr).toMatch(/saved, encrypted/)
  expect(r.code).toBe(0)
  v2 = readFileSync(path.join(repo, 'db.yaml'), 'utf8')
})

afterAll(() => {
  rmSync(repo, {recursive: true, force: true})
  if (worktree) rmSync(worktree, {recursive: true, force: true})
})

let worktree: string | undefined
/**
 * A branch `history` whose last commit changes db.yaml from v1 to v2, committed in a worktree of its
 * own (once, by the first test that needs it), so the checkout keeps its uncommitted change.
 */
function history(): void {
  if (worktree) return
  worktree = path.join(mkdtempSync(path.join(os.tmpdir(), 'kseal-gitdiff-wt-')), 'wt')
  expect(git(['worktree', 'add', '-q', '-b', 'history', worktree]).code).toBe(0)
  writeFileSync(path.join(worktree, 'db.yaml'), v2)
  expect(git(['-C', worktree, 'commit', '-q', '-am', 'rotate password']).code).toBe(0)
}

describe('git diff with the kseal textconv', () => {
  it('shows a key holder the decrypted change, and nothing of what did not change', () => {
    const r = git(['diff'], {KSEAL_KEYS: OTHER_KEY})
    expect(r.code).toBe(0)
    expect(changes(r.stdout).sort()).toEqual(['+  added: fresh', '+  password: n3w-pass', '-  password: s3cr3t', '-  removed: gone-soon'])
    expect(r.stdout).not.toContain('kseal:v2:')
    expect(r.stdout).not.toContain('mac:')
  })

  it('shows everyone else which keys were added, removed or changed, from the ciphertext alone', () => {
    const r = git(['diff'])
    expect(r.code).toBe(0)
    const lines = changes(r.stdout)
    expect(lines.map((l) => l.replace(/sha256:[0-9a-f]{12}/, 'sha256:*')).sort()).toEqual([
      '+  added: <encrypted sha256:*>',
      '+  password: <encrypted sha256:*>',
      '-  password: <encrypted sha256:*>',
      '-  removed: <encrypted sha256:*>',
    ])
    const fp = (sign: string, key: string) => lines.find((l) => l.startsWith(`${sign}  ${key}:`))!.split(': ')[1]
    expect(fp('-', 'password')).not.toBe(fp('+', 'password'))
    for (const secret of ['s3cr3t', 'n3w-pass', 'gone-soon', 'fresh', 'admin', 'kseal:v2:']) expect(r.stdout).not.toContain(secret)
  })

  it('git log -p shows the history decrypted for a key holder', () => {
    history()
    const r = git(['log', '-p', '--format=commit %s', 'history', '--', 'db.yaml'], {KSEAL_KEYS: OTHER_KEY})
    expect(r.code).toBe(0)
    const [second, first] = r.stdout.split(/^commit /m).filter(Boolean)
    expect(second).toMatch(/^rotate password/)
    expect(changes(second).sort()).toEqual(['+  added: fresh', '+  password: n3w-pass', '-  password: s3cr3t', '-  removed: gone-soon'])
    expect(changes(first)).toContain('+  password: s3cr3t')
    expect(changes(first)).toContain('+    line one')
    // The envelope, reduced to what a reviewer can read.
    expect(first).toContain(
      '+kseal:\n+  version: 2\n+  scope: "strict"\n+  namespace: "prod"\n+  name: "db"\n+  recipients:\n+    - backend: "rsa"\n+      kid: "886d5b01b46231a8"\n',
    )
  })

  it('writes no file: the decrypted text only goes to git through stdout', () => {
    history()
    const before = readdirSync(repo).sort()
    const r = git(['log', '-p', 'history', '--', 'db.yaml'], {KSEAL_KEYS: OTHER_KEY})
    expect(r.stdout).toContain('n3w-pass')
    expect(readdirSync(tmp)).toEqual([])
    expect(readdirSync(repo).sort()).toEqual(before)
    expect(readdirSync(path.join(repo, '.git', 'refs'))).not.toContain('notes')
  })
})

describe('kseal textconv never fails a diff', () => {
  const textconv = (file: string, env: Record<string, string | undefined> = {}) =>
    spawnSync(process.execPath, [BIN, 'textconv', file], {encoding: 'buffer', env: cleanEnv(env) as NodeJS.ProcessEnv})

  it('shows files it cannot read as manifests as they are: broken YAML, templates, binary data', () => {
    const files: [string, Buffer][] = [
      ['broken.yaml', Buffer.from('kind: Secret\nstringData: [unclosed\n')],
      ['template.yaml', Buffer.from('apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Values.name }}\n')],
      ['blob.yaml', Buffer.from([0, 1, 2, 255, 254])],
    ]
    for (const [name, bytes] of files) {
      const f = path.join(tmp, name)
      writeFileSync(f, bytes)
      const r = textconv(f, {KSEAL_KEYS: OTHER_KEY})
      expect(r.status).toBe(0)
      expect(Buffer.compare(r.stdout, bytes)).toBe(0)
    }
  })

  it('takes keys from -k too', () => {
    const f = path.join(tmp, 'v2.yaml')
    writeFileSync(f, v2)
    const r = spawnSync(process.execPath, [BIN, 'textconv', '-k', OTHER_KEY, f], {encoding: 'utf8', env: cleanEnv() as NodeJS.ProcessEnv})
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('  password: n3w-pass\n')
  })

  it('falls back to fingerprints for a tampered Secret or a key source that does not exist', () => {
    const f = path.join(tmp, 'tampered.yaml')
    writeFileSync(
      f,
      v2.replace(/(password: kseal:v2:)(.)/, (_, a, c) => a + (c === 'A' ? 'B' : 'A')),
    )
    for (const env of [{KSEAL_KEYS: OTHER_KEY}, {KSEAL_KEYS: '/nonexistent/key'}]) {
      const r = textconv(f, env)
      expect(r.status).toBe(0)
      expect(r.stdout.toString()).toMatch(/ {2}password: <encrypted sha256:[0-9a-f]{12}>\n/)
      expect(r.stdout.toString()).not.toContain('n3w-pass')
    }
  })

  it('a real git diff over a broken file still succeeds and shows the raw change', () => {
    writeFileSync(path.join(repo, 'broken.yaml'), 'a: [\n')
    git(['add', 'broken.yaml'])
    writeFileSync(path.join(repo, 'broken.yaml'), 'a: [b\n')
    const r = git(['diff', '--', 'broken.yaml'], {KSEAL_KEYS: OTHER_KEY})
    expect(r.code).toBe(0)
    expect(changes(r.stdout)).toEqual(['-a: [', '+a: [b'])
  })
})
