/**
 * `kseal edit` driven by scripted editors ($EDITOR / $VISUAL are small sh scripts): the private
 * temp file, re-encryption that keeps unchanged ciphertext, the reopen prompt (on a real pty via
 * script(1)), and clean-up on every way out, signals included.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {BIN, cleanEnv, kseal, OTHER_CERT, OTHER_KEY, ROOT, type RunResult} from './support/cli.js'
import {until} from './support/until.js'

const PLAIN = `# the database
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  user: admin
  password: "s3cr3t"
  mode: 'on'
  cert: |
    line one
    line two
data:
  token: aGVsbG8=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: b
---
apiVersion: v1
kind: Secret
metadata:
  name: api
  namespace: prod
stringData:
  key: abc
`

let dir: string
let encrypted: string
let n = 0

/** A fresh case: its own directory, the encrypted file, an empty TMPDIR and a log for the editor. */
function setup(content = encrypted) {
  const d = path.join(dir, `case${++n}`)
  const tmp = path.join(d, 'tmp')
  mkdirSync(tmp, {recursive: true})
  const file = path.join(d, 'db.secret.yaml')
  writeFileSync(file, content)
  chmodSync(file, 0o640)
  return {d, tmp, file, log: path.join(d, 'editor.log')}
}

/** A scripted editor: sh, with LOG set to the case's log file. */
function editor(d: string, body: string): string {
  const f = path.join(d, `editor-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(f, `#!/bin/sh\nLOG="${path.join(d, 'editor.log')}"\n${body}\n`)
  chmodSync(f, 0o755)
  return f
}

/**
 * Records what the editor saw: a copy of the file, then a line with its path, its mode and its
 * directory's mode. The line comes last: tests that interrupt kseal wait for it, and a copy still
 * running then would complain on the shared stderr once kseal has removed the file.
 */
const RECORD = 'cp "$1" "$LOG.seen"\necho "$1 $(stat -c %a "$1") $(stat -c %a "$(dirname "$1")") $$" >> "$LOG"'

const env = (tmp: string, extra: Record<string, string | undefined> = {}) => cleanEnv({KSEAL_KEYS: OTHER_KEY, TMPDIR: tmp, ...extra})

function edit(file: string, tmp: string, extra: Record<string, string | undefined>, args: string[] = []): Promise<RunResult> {
  return kseal(['edit', ...args, file], {env: env(tmp, extra)})
}

async function decrypt(file: string): Promise<string> {
  const r = await kseal(['decrypt', file], {env: cleanEnv({KSEAL_KEYS: OTHER_KEY})})
  expect(r.code).toBe(0)
  return r.stdout
}

/** The lines that differ between two texts of the same length in lines. */
function changedLines(a: string, b: string): string[] {
  const x = a.split('\n')
  const y = b.split('\n')
  expect(y).toHaveLength(x.length)
  return x.flatMap((l, i) => (l === y[i] ? [] : [`${l.split(':')[0].trim()}`]))
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-edit-test-'))
  const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  encrypted = r.stdout
})

afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('kseal edit', () => {
  it('opens the decrypted file (0600, in a private 0700 dir) and re-encrypts only what changed', async () => {
    const c = setup()
    const r = await edit(c.file, c.tmp, {EDITOR: editor(c.d, `${RECORD}\nsed -i 's/s3cr3t/n3w-pass/' "$1"`)})
    expect(r).toMatchObject({code: 0, stdout: ''})
    expect(r.stderr).toBe(`kseal: ${c.file}: saved, encrypted\n`)
    const [seenPath, fileMode, dirMode] = readFileSync(c.log, 'utf8').trim().split(' ')
    expect([fileMode, dirMode]).toEqual(['600', '700'])
    expect(path.dirname(path.dirname(seenPath))).toBe(c.tmp)
    expect(path.basename(seenPath)).toBe('db.secret.yaml')
    // The editor saw plaintext and no envelope; the directory is gone now.
    expect(readFileSync(`${c.log}.seen`, 'utf8')).toBe(PLAIN)
    expect(readdirSync(c.tmp)).toEqual([])
    const after = readFileSync(c.file, 'utf8')
    // Byte for byte: only the edited value's token and the MAC changed.
    expect(changedLines(encrypted, after)).toEqual(['password', 'mac'])
    expect(await decrypt(c.file)).toBe(PLAIN.replace('s3cr3t', 'n3w-pass'))
    expect(statSync(c.file).mode & 0o777).toBe(0o640)
  })

  it("encrypts new keys with the Secret's own data key and drops removed ones", async () => {
    const c = setup()
    const r = await edit(c.file, c.tmp, {
      EDITOR: editor(c.d, `sed -i -e "/^  mode: 'on'$/d" -e 's/^  user: admin$/  user: admin\\n  added: "new value"/' "$1"`),
    })
    expect(r.code).toBe(0)
    const after = readFileSync(c.file, 'utf8')
    const wrapped = (t: string) => t.match(/wrapped: .*/g)
    expect(wrapped(after)).toEqual(wrapped(encrypted)) // same data key, not re-wrapped
    expect(after).toMatch(/\n {2}added: "kseal:v2:\S+"\n/)
    expect(after).not.toMatch(/mode:/)
    for (const key of ['user', 'password', 'cert', 'token', 'key']) {
      const token = (t: string) => t.match(new RegExp(`\\n {2}${key}: (?:\\|\\n {4})?("?kseal:v2:[^\\n]+)`))![1]
      expect(token(after)).toBe(token(encrypted))
    }
    expect(await decrypt(c.file)).toBe(
      PLAIN.replace("  mode: 'on'\n", '').replace('  user: admin\n', '  user: admin\n  added: "new value"\n'),
    )
  })

  it('saving without changes writes nothing', async () => {
    const c = setup()
    const before = statSync(c.file)
    const r = await edit(c.file, c.tmp, {EDITOR: 'true'})
    expect(r).toEqual({code: 0, stdout: '', stderr: `kseal: ${c.file}: no changes; not written\n`})
    const after = statSync(c.file)
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs])
    expect(readdirSync(c.tmp)).toEqual([])
  })

  it('$VISUAL wins over $EDITOR, an editor command with arguments runs through the shell, $XDG_RUNTIME_DIR holds the file', async () => {
    const c = setup()
    const runtime = path.join(c.d, 'run')
    mkdirSync(runtime, {mode: 0o700})
    const visual = editor(c.d, '[ "$1" = "--wait" ] || exit 7\nshift\n' + RECORD + '\nsed -i "s/abc/xyz/" "$1"')
    const r = await edit(c.file, c.tmp, {VISUAL: `${visual} --wait`, EDITOR: 'false', XDG_RUNTIME_DIR: runtime})
    expect(r.code).toBe(0)
    expect(path.dirname(path.dirname(readFileSync(c.log, 'utf8').split(' ')[0]))).toBe(runtime)
    expect(readdirSync(runtime)).toEqual([])
    expect(await decrypt(c.file)).toBe(PLAIN.replace('key: abc', 'key: xyz'))
  })

  it('a plaintext Secret: refused without -r (the editor never opens), encrypted on save with -r', async () => {
    const c = setup(PLAIN)
    const ed = editor(c.d, `${RECORD}\nsed -i 's/abc/xyz/' "$1"`)
    const refused = await edit(c.file, c.tmp, {EDITOR: ed})
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/holds a Secret that is not encrypted: encrypt it first \(kseal encrypt -i\), or pass -r/)
    expect(existsSync(c.log)).toBe(false)
    const r = await edit(c.file, c.tmp, {EDITOR: ed}, ['-r', `rsa:${OTHER_CERT}`, '--scope', 'namespace'])
    expect(r.code).toBe(0)
    expect(readFileSync(c.file, 'utf8').match(/kseal:v2:/g)).toHaveLength(6)
    expect(readFileSync(c.file, 'utf8').match(/scope: "namespace"/g)).toHaveLength(2)
    expect(await decrypt(c.file)).toBe(PLAIN.replace('key: abc', 'key: xyz'))
  })
})

describe('kseal edit with .kseal.yaml rules', () => {
  /** A case whose directory holds a .kseal.yaml: Secrets in namespace prod go to OTHER_CERT, namespace scope. */
  function withRules(content: string) {
    const c = setup(content)
    writeFileSync(
      path.join(c.d, '.kseal.yaml'),
      `creation_rules:\n  - namespace_regex: ^prod$\n    recipients: [rsa:${OTHER_CERT}]\n    scope: namespace\n`,
    )
    return c
  }

  it("a plaintext Secret without -r is encrypted on save for its rule, with the rule's scope", async () => {
    const c = withRules(PLAIN)
    const r = await edit(c.file, c.tmp, {EDITOR: editor(c.d, `sed -i 's/abc/xyz/' "$1"`)})
    expect(r.code).toBe(0)
    const after = readFileSync(c.file, 'utf8')
    expect(after.match(/kseal:v2:/g)).toHaveLength(6)
    expect(after.match(/scope: "namespace"/g)).toHaveLength(2)
    expect(await decrypt(c.file)).toBe(PLAIN.replace('key: abc', 'key: xyz'))
  })

  it('a Secret added in the editor follows its rule; one no rule matches is refused, nothing written', async () => {
    const c = withRules(encrypted)
    const add = (ns: string) =>
      editor(
        c.d,
        `printf -- "---\\napiVersion: v1\\nkind: Secret\\nmetadata:\\n  name: extra\\n  namespace: ${ns}\\nstringData:\\n  x: y1\\n" >> "$1"`,
      )
    const refused = await edit(c.file, c.tmp, {EDITOR: add('staging')})
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(
      /\(Secret staging\/extra\): no creation rule in .*\.kseal\.yaml matches path "db\.secret\.yaml" and namespace "staging"/,
    )
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
    const r = await edit(c.file, c.tmp, {EDITOR: add('prod')})
    expect(r.code).toBe(0)
    const after = readFileSync(c.file, 'utf8')
    expect(after.startsWith(encrypted)).toBe(true)
    expect(after.slice(encrypted.length)).toMatch(/x: kseal:v2:\S+\nkseal:\n {2}version: 2\n {2}scope: "namespace"\n {2}namespace: "prod"/)
    expect(await decrypt(c.file)).toBe(
      PLAIN + '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: extra\n  namespace: prod\nstringData:\n  x: y1\n',
    )
  })

  it("--scope wins over the rule's scope, and a malformed .kseal.yaml stops before the editor opens", async () => {
    const c = withRules(PLAIN)
    const r = await edit(c.file, c.tmp, {EDITOR: 'true'}, ['--scope', 'cluster'])
    expect(r.code).toBe(0)
    expect(readFileSync(c.file, 'utf8').match(/scope: "cluster"/g)).toHaveLength(2)
    const bad = withRules(PLAIN)
    writeFileSync(path.join(bad.d, '.kseal.yaml'), 'creation_rules: [unclosed\n')
    const ed = editor(bad.d, RECORD)
    const stopped = await edit(bad.file, bad.tmp, {EDITOR: ed})
    expect(stopped.code).toBe(2)
    expect(stopped.stderr).toMatch(/\.kseal\.yaml/)
    expect(existsSync(bad.log)).toBe(false)
    expect(readFileSync(bad.file, 'utf8')).toBe(PLAIN)
  })
})

describe('kseal edit when the edit cannot be saved', () => {
  it('invalid YAML without a terminal: exit 2, nothing changed, the plaintext not kept anywhere', async () => {
    const c = setup()
    const r = await edit(c.file, c.tmp, {EDITOR: editor(c.d, 'echo "stringData: [unclosed" >> "$1"')})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/db\.secret\.yaml: document 3: malformed YAML at line \d+, column \d+/)
    expect(r.stderr).toMatch(/the edit was not saved: nothing was changed\n$/)
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
    expect(readdirSync(c.tmp)).toEqual([])
  })

  it('a new Secret without -r, or a data value that is not base64, is refused the same way', async () => {
    const c = setup()
    const added = editor(
      c.d,
      'printf -- "---\\napiVersion: v1\\nkind: Secret\\nmetadata:\\n  name: extra\\nstringData:\\n  x: y1\\n" >> "$1"',
    )
    const r = await edit(c.file, c.tmp, {EDITOR: added})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/\(Secret extra\): is not one of the encrypted Secrets of this file \(new, or renamed\): pass -r/)
    const b64 = await edit(c.file, c.tmp, {EDITOR: editor(c.d, 'sed -i "s/token: aGVsbG8=/token: not base64!/" "$1"')})
    expect(b64.code).toBe(2)
    expect(b64.stderr).toMatch(/data\.token: not valid base64/)
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
  })

  it('on a terminal it offers to reopen the editor with the edit, and saves the fixed version', async () => {
    const c = setup()
    // First run: change a value and break the YAML. Second run: the broken edit is still there; fix it.
    const ed = editor(
      c.d,
      `echo run >> "$LOG"
if [ "$(grep -c run "$LOG")" = 1 ]; then sed -i 's/s3cr3t/kept-edit/' "$1"; echo "stringData: [unclosed" >> "$1"
else grep -q kept-edit "$1" || exit 9; sed -i '$d' "$1"; fi`,
    )
    const child = spawn('script', ['-qec', `${process.execPath} ${BIN} edit ${c.file}`, '/dev/null'], {
      env: env(c.tmp, {EDITOR: ed}) as NodeJS.ProcessEnv,
      cwd: ROOT,
    })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await until(() => out.includes('Reopen the editor to fix it? [Y/n]'), 'the reopen question', 20_000)
    child.stdin.write('\n') // the default: yes
    expect(await closed).toBe(0)
    child.stdin.end()
    expect(out).toMatch(/malformed YAML/)
    expect(readFileSync(c.log, 'utf8')).toBe('run\nrun\n')
    expect(await decrypt(c.file)).toBe(PLAIN.replace('s3cr3t', 'kept-edit'))
    expect(readdirSync(c.tmp)).toEqual([])
  })

  it('answering n on the terminal leaves the file as it was (exit 2)', async () => {
    const c = setup()
    const ed = editor(c.d, 'echo "stringData: [unclosed" >> "$1"')
    const child = spawn('script', ['-qec', `${process.execPath} ${BIN} edit ${c.file}`, '/dev/null'], {
      env: env(c.tmp, {EDITOR: ed}) as NodeJS.ProcessEnv,
      cwd: ROOT,
    })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await until(() => out.includes('[Y/n]'), 'the question', 20_000)
    child.stdin.write('n\n')
    expect(await closed).toBe(2)
    child.stdin.end()
    expect(out).toMatch(/nothing was changed/)
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
    expect(readdirSync(c.tmp)).toEqual([])
  })

  it('an editor that fails or is killed: nothing changed, temp dir removed', async () => {
    const c = setup()
    const failed = await edit(c.file, c.tmp, {EDITOR: editor(c.d, 'sed -i "s/s3cr3t/x/" "$1"\nexit 3')})
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(/exited with status 3; nothing was changed/)
    const killed = await edit(c.file, c.tmp, {EDITOR: editor(c.d, 'sed -i "s/s3cr3t/x/" "$1"\nkill -9 $$')})
    expect(killed.code).toBe(1)
    expect(killed.stderr).toMatch(/was killed by SIGKILL; nothing was changed/)
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
    expect(readdirSync(c.tmp)).toEqual([])
  })

  it('the file changed on disk while it was open: nothing is written over it', async () => {
    const c = setup()
    const r = await edit(c.file, c.tmp, {EDITOR: editor(c.d, `sed -i "s/s3cr3t/x/" "$1"\necho "# someone else" >> "${c.file}"`)})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/changed on disk while it was being edited: nothing was written/)
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted + '# someone else\n')
    expect(readdirSync(c.tmp)).toEqual([])
  })
})

describe('kseal edit interrupted', () => {
  /** Starts an edit whose editor records itself and waits; resolves once the editor runs. */
  async function interrupted(signal: NodeJS.Signals) {
    const c = setup()
    const ed = editor(c.d, `sed -i 's/s3cr3t/x/' "$1"\n${RECORD}\nexec sleep 30`)
    const child: ChildProcess = spawn(process.execPath, [BIN, 'edit', c.file], {
      env: env(c.tmp, {EDITOR: ed}) as NodeJS.ProcessEnv,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d))
    const closed = new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, sig) => resolve([code, sig])))
    await until(() => existsSync(c.log) && readFileSync(c.log, 'utf8').includes('\n'), 'the editor to start', 20_000)
    const [tempFile, , , pid] = readFileSync(c.log, 'utf8').trim().split(' ')
    expect(existsSync(tempFile)).toBe(true)
    child.kill(signal)
    const [code] = await closed
    return {c, code, stderr, tempFile, editorPid: Number(pid)}
  }

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s: the temp dir is removed, the editor stopped, the file untouched', async (signal, exit) => {
    const {c, code, stderr, tempFile, editorPid} = await interrupted(signal)
    expect(code).toBe(exit)
    expect(stderr).toBe(`kseal: interrupted (${signal}); ${c.file} was not changed\n`)
    expect(existsSync(path.dirname(tempFile))).toBe(false)
    expect(readdirSync(c.tmp)).toEqual([])
    expect(readFileSync(c.file, 'utf8')).toBe(encrypted)
    await until(() => !alive(editorPid), 'the editor to exit', 20_000)
  })
})

/** Whether a process still runs (a zombie waiting to be reaped does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}
