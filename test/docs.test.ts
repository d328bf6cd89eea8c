/**
 * The docs are tested like code (the convention is written down in docs/README.md, "Writing docs"):
 *
 * - every shell block in README.md, CONTRIBUTING.md and docs/ says whether it runs here: ```sh test
 *   blocks are run, in order, per page, in one fresh git repository with the built CLI on PATH as
 *   `kseal` (and `kseal-krm`), HOME and GNUPGHOME of their own, exported variables and the working
 *   directory carrying over from block to block; `#>` lines under a command are its
 *   expected output (stdout and stderr, in order; `…` matches anything), `#> (exit N)` its exit code.
 *   Other blocks name why they cannot run here (`needs-cluster`, `needs-aws`, ...); such a block may
 *   say what it would leave behind (`provides=kseal.crt`), and a block may name files its reader
 *   already has (`given=...`): the test puts a stand-in there, from the table below;
 * - every relative link between the docs resolves, to a file and to a heading;
 * - LICENSE is the Apache-2.0 text that package.json names.
 */
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {BIN, INTEROP, OTHER_CERT, ROOT, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'
import {tool} from './support/tools.js'

/** Why a shell block does not run here; a block must carry `test` or one of these. */
const NOT_RUNNABLE: Record<string, string> = {
  'needs-cluster': 'a Kubernetes cluster (or the kseal controller in one)',
  'needs-aws': 'AWS credentials and a KMS key',
  'needs-helm': 'helm',
  'needs-argocd': 'an Argo CD installation',
  'needs-kustomize': "the standalone kustomize binary (kubectl's built-in kustomize cannot run exec KRM functions)",
  'needs-docker': 'a container image build and a registry',
  'needs-terminal': 'an interactive terminal or editor',
  'needs-checkout': 'a clone of the kseal repository and its npm install',
  fragment: "a file's content (its first comment names the file), shown for reading, not commands to run",
}

/** Real tools a runnable block may call; the page's blocks are skipped, with a line, where one is missing. */
const TOOLS = ['kubectl', 'kpt', 'age', 'age-keygen', 'gpg', 'openssl', 'jq', 'git', 'pre-commit']

/**
 * Stand-ins for what a reader already has (`given=`) or what a block that cannot run here would
 * leave behind (`provides=`), by the path the page names.
 */
const STAND_INS: Record<string, {what: string; write: (dest: string) => void}> = {
  'kseal.crt': {what: "the controller's certificate (kseal cert)", write: (d) => copyFileSync(TEAM_CERT, d)},
  deploy: {what: "the unsealer's install manifests, in a kseal checkout", write: (d) => symlinkSync(path.join(ROOT, 'deploy'), d)},
  'alice.crt': {what: "a teammate's certificate (her kseal keygen)", write: (d) => copyFileSync(OTHER_CERT, d)},
  'new-cluster.crt': {what: "another cluster's certificate (kseal cert there)", write: (d) => copyFileSync(OTHER_CERT, d)},
  'tls.key': {
    what: "the controller's private key, as a PEM file (the tls.key of its key Secret)",
    write: (d) => writeFileSync(d, readFileSync(TEAM_KEY), {mode: 0o600}),
  },
  'kseal-keys.yaml': {
    what: "the controller's key Secrets as kubectl get -o yaml writes them",
    write: (d) => writeFileSync(d, keySecretList(readFileSync(TEAM_CERT), readFileSync(TEAM_KEY)), {mode: 0o600}),
  },
  'bitnami-keys.yaml': {
    what: "the sealed-secrets controller's key Secret",
    write: (d) => writeFileSync(d, readFileSync(path.join(INTEROP, 'sealed-secrets', 'sealed-secrets-key.yaml')), {mode: 0o600}),
  },
  'old/db.sealedsecret.yaml': {
    what: "a SealedSecret that Bitnami's kubeseal wrote",
    write: (d) => copyFileSync(path.join(INTEROP, 'sealed-secrets', 'sealedsecret-strict.yaml'), d),
  },
  'old/app.sealedsecret.yaml': {
    what: 'a Bitnami SealedSecret with templated values (spec.template.data)',
    write: (d) => copyFileSync(path.join(ROOT, 'test', 'fixtures', 'bitnami', 'templated-strict.yaml'), d),
  },
}

function keySecretList(cert: Buffer, key: Buffer): string {
  const b64 = (b: Buffer) => b.toString('base64')
  return `apiVersion: v1
items:
- apiVersion: v1
  kind: Secret
  metadata:
    name: kseal-key-${TEAM_KID}
    namespace: kseal-system
    labels:
      kseal.dev/sealing-key: active
  type: kubernetes.io/tls
  data:
    tls.crt: ${b64(cert)}
    tls.key: ${b64(key)}
kind: List
metadata:
  resourceVersion: ""
`
}

interface Block {
  file: string
  line: number
  lang: string
  words: string[]
  body: string
}

/** The pages: the README, CONTRIBUTING, CHANGELOG and everything under docs/. */
function pages(): string[] {
  const out = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md'].filter((f) => existsSync(path.join(ROOT, f)))
  const walk = (dir: string) => {
    for (const e of readdirSync(path.join(ROOT, dir), {withFileTypes: true})) {
      const rel = path.join(dir, e.name)
      if (e.isDirectory()) walk(rel)
      else if (e.name.endsWith('.md')) out.push(rel)
    }
  }
  walk('docs')
  return out
}

/** Fenced code blocks, with the line their fence opens on. */
function blocks(file: string, text: string): Block[] {
  const out: Block[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*(.*)$/.exec(lines[i])
    if (!open) continue
    const fence = open[1]
    const [lang = '', ...words] = open[2].trim().split(/\s+/).filter(Boolean)
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[i]); i++) body.push(lines[i])
    out.push({file, line: start + 1, lang, words, body: body.join('\n')})
  }
  return out
}

const SHELL = new Set(['sh', 'bash', 'shell', 'console'])
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8')
/** The generated reference carries --help's examples; its freshness is test/cli-reference.test.ts. */
const GENERATED = new Set([path.join('docs', 'reference', 'cli.md')])

function option(b: Block, name: string): string[] {
  return b.words
    .filter((w) => w.startsWith(`${name}=`))
    .flatMap((w) => w.slice(name.length + 1).split(','))
    .filter(Boolean)
}

describe('shell blocks say whether they run here', () => {
  it('every shell block is `test` or names what it needs; stand-ins exist for what blocks name', () => {
    const problems: string[] = []
    let runnable = 0
    for (const f of pages().filter((p) => !GENERATED.has(p))) {
      for (const b of blocks(f, read(f)).filter((x) => SHELL.has(x.lang))) {
        const kinds = b.words.filter((w) => !w.includes('='))
        const known = kinds.filter((w) => w === 'test' || w in NOT_RUNNABLE)
        if (known.length !== 1 || kinds.length !== 1)
          problems.push(
            `${f}:${b.line}: \`${b.lang} ${b.words.join(' ')}\`: say \`test\` or one of ${Object.keys(NOT_RUNNABLE).join(', ')}`,
          )
        if (kinds[0] === 'test') runnable++
        for (const p of [...option(b, 'provides'), ...option(b, 'given')])
          if (!(p in STAND_INS)) problems.push(`${f}:${b.line}: no stand-in for ${p}`)
        for (const w of b.words.filter((x) => x.includes('=') && !/^(provides|given)=/.test(x)))
          problems.push(`${f}:${b.line}: unknown option ${w}`)
      }
    }
    expect(problems).toEqual([])
    expect(runnable).toBeGreaterThan(20)
  })
})

interface Step {
  line: number
  script: string
  expect: string[]
  exit: number
}

/** A runnable block's steps: the commands up to each run of `#>` lines, and those lines. */
function steps(b: Block): Step[] {
  const out: Step[] = []
  let script: string[] = []
  let expected: string[] = []
  let exit = 0
  let line = b.line + 1
  const flush = () => {
    if (script.some((l) => l.trim() && !l.trim().startsWith('#')) || expected.length)
      out.push({line, script: script.join('\n'), expect: expected, exit})
    script = []
    expected = []
    exit = 0
  }
  b.body.split('\n').forEach((l, i) => {
    const m = /^#>(?: (.*))?$/.exec(l)
    if (m) {
      const code = /^\(exit (\d+)\)$/.exec(m[1] ?? '')
      if (code) exit = Number(code[1])
      else expected.push((m[1] ?? '').trimEnd())
      return
    }
    if (expected.length || exit) {
      flush()
      line = b.line + 1 + i
    }
    script.push(l)
  })
  flush()
  return out
}

/**
 * The bash script for a block: each step's output to its own file, so the step that stops it is known.
 * The exported variables and the working directory carry over to the page's next block, as in the
 * reader's shell.
 */
function script(b: Block, out: string, state: string): string {
  const parts = [`if [ -f "${state}/env" ]; then . "${state}/env"; cd "$(cat "${state}/pwd")"; fi`, 'set -eo pipefail']
  steps(b).forEach((s, i) => {
    parts.push(`echo ${i} > "${out}/current"`, `exec > "${out}/${i}.out" 2>&1`)
    if (s.exit) parts.push('set +e', s.script, `echo $? > "${out}/${i}.rc"`, 'set -e')
    else parts.push(s.script)
  })
  parts.push(`export -p > "${state}/env"`, `pwd > "${state}/pwd"`)
  return parts.join('\n') + '\n'
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Whether the expected lines occur, in order, among the output lines (`…` matches anything). */
function matches(expected: string[], output: string): boolean {
  const lines = output.split('\n').map((l) => l.trimEnd())
  let at = 0
  for (const e of expected) {
    const re = new RegExp('^' + e.split('…').map(escapeRe).join('.*') + '$')
    while (at < lines.length && !re.test(lines[at])) at++
    if (at === lines.length) return false
    at++
  }
  return true
}

const runnablePages = pages().filter(
  (f) => !GENERATED.has(f) && blocks(f, read(f)).some((b) => SHELL.has(b.lang) && b.words.includes('test')),
)

for (const page of runnablePages) {
  const all = blocks(page, read(page)).filter((b) => SHELL.has(b.lang))
  const used = TOOLS.filter((t) =>
    all.some(
      (b) => b.words.includes('test') && new RegExp(`(^|[\\s|;&(\`$])${escapeRe(t)}(\\s|$)`, 'm').test(b.body.replace(/^\s*#.*$/gm, '')),
    ),
  )
  const missing = used.find((t) => !tool(t).present)
  const suite = missing ? tool(missing).describe : describe
  suite(`${page}: its runnable examples`, () => {
    let tmp: string
    let work: string
    let env: Record<string, string>

    beforeAll(() => {
      tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-docs-'))
      work = path.join(tmp, 'repo')
      const home = path.join(tmp, 'home')
      const bin = path.join(tmp, 'bin')
      for (const d of [work, home, bin, path.join(tmp, 'gnupg'), path.join(tmp, 'out')]) mkdirSync(d, {recursive: true, mode: 0o700})
      writeFileSync(path.join(bin, 'kseal'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, {mode: 0o755})
      writeFileSync(
        path.join(bin, 'kseal-krm'),
        `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin', 'kseal-krm.js')}" "$@"\n`,
        {mode: 0o755},
      )
      env = {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: home,
        GNUPGHOME: path.join(tmp, 'gnupg'),
        LANG: 'C.UTF-8',
        TZ: 'UTC',
        GIT_AUTHOR_NAME: 'Docs',
        GIT_AUTHOR_EMAIL: 'docs@example.com',
        GIT_COMMITTER_NAME: 'Docs',
        GIT_COMMITTER_EMAIL: 'docs@example.com',
        GIT_CONFIG_NOSYSTEM: '1',
      }
      const git = spawnSync('git', ['init', '-q', '-b', 'main', work], {env, encoding: 'utf8'})
      expect(git.stderr).toBe('')
    })
    afterAll(() => {
      // A page's gpg examples start a gpg-agent in its GNUPGHOME; stop it with the page.
      spawnSync('gpgconf', ['--kill', 'gpg-agent'], {env})
      rmSync(tmp, {recursive: true, force: true})
    })

    const place = (b: Block) => {
      for (const p of [...option(b, 'given'), ...option(b, 'provides')]) {
        const dest = path.join(work, p)
        mkdirSync(path.dirname(dest), {recursive: true})
        STAND_INS[p].write(dest)
      }
    }

    /** Runs block n of the page in the page's session (its repository, variables and directory). */
    const execute = (n: number) => {
      const b = all[n]!
      place(b)
      const out = path.join(tmp, 'out', String(n))
      mkdirSync(out)
      const file = path.join(out, 'block.sh')
      writeFileSync(file, script(b, out, path.join(tmp, 'out')))
      return {out, r: spawnSync('bash', [file], {cwd: work, env, encoding: 'utf8', timeout: 120_000})}
    }
    // The blocks of a page are one reader's session: a block whose test runs without the ones before
    // it (alone, or filtered with -t) first runs those, as that reader would have.
    let ran = -1
    const catchUp = (n: number) => {
      for (let k = ran + 1; k < n; k++) {
        if (!all[k]!.words.includes('test')) {
          if (option(all[k]!, 'provides').length) place(all[k]!) // what its own stand-in test does
        } else
          expect({before: `${page}:${all[k]!.line}`, status: execute(k).r.status}).toEqual({before: `${page}:${all[k]!.line}`, status: 0})
      }
      ran = n
    }

    all.forEach((b, n) => {
      if (!b.words.includes('test')) {
        if (option(b, 'provides').length)
          it(`${page}:${b.line} (${b.words[0]}): stand-ins for ${option(b, 'provides').join(', ')}`, () => {
            catchUp(n)
            place(b)
          })
        return
      }
      it(`${page}:${b.line}`, () => {
        catchUp(n)
        const {out, r} = execute(n)
        const current = existsSync(path.join(out, 'current')) ? Number(readFileSync(path.join(out, 'current'), 'utf8')) : -1
        const ss = steps(b)
        const output = (i: number) => (existsSync(path.join(out, `${i}.out`)) ? readFileSync(path.join(out, `${i}.out`), 'utf8') : '')
        // A step that stopped the block: where it is, its exit code and what it printed.
        expect({
          at: `${page}:${ss[current]?.line ?? b.line}`,
          status: r.status,
          signal: r.signal,
          output: r.status === 0 ? '' : output(current),
          stderr: r.stderr,
        }).toEqual({at: `${page}:${ss[current]?.line ?? b.line}`, status: 0, signal: null, output: '', stderr: ''})
        ss.forEach((s, i) => {
          const got = output(i)
          const rc = existsSync(path.join(out, `${i}.rc`)) ? Number(readFileSync(path.join(out, `${i}.rc`), 'utf8')) : 0
          expect({at: `${page}:${s.line}`, exit: rc, output: matches(s.expect, got) ? s.expect : got.split('\n')}).toEqual({
            at: `${page}:${s.line}`,
            exit: s.exit,
            output: s.expect,
          })
        })
      }, 180_000)
    })
  })
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen, repeats numbered. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  const outside = text.replace(/^ {0,3}(`{3,}|~{3,})[^\n]*\n[\s\S]*?\n {0,3}\1[^\n]*$/gm, '')
  for (const m of outside.matchAll(/^#{1,6} +(.+?)#*\s*$/gm)) {
    const plain = m[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    const base = plain
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\p{Pc} -]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n ? `${base}-${n}` : base)
  }
  return out
}

/** Relative links (`[text](target)`) outside code, with their line. */
function links(text: string): {target: string; line: number}[] {
  const out: {target: string; line: number}[] = []
  let fence: string | null = null
  text.split('\n').forEach((l, i) => {
    const f = /^ {0,3}(`{3,}|~{3,})/.exec(l)
    if (f && (fence === null || f[1][0] === fence[0])) {
      fence = fence === null ? f[1] : null
      return
    }
    if (fence !== null) return
    for (const m of l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1])) out.push({target: m[1], line: i + 1})
    }
  })
  return out
}

describe('links between the docs', () => {
  it('every relative link resolves to a file, and every #anchor to a heading there', () => {
    const problems: string[] = []
    let count = 0
    for (const f of pages()) {
      for (const {target, line} of links(read(f))) {
        count++
        const [p, hash] = target.split('#')
        const dest = p ? path.normalize(path.join(path.dirname(f), decodeURIComponent(p))) : f
        if (!existsSync(path.join(ROOT, dest))) {
          problems.push(`${f}:${line}: ${target}: no such file`)
          continue
        }
        if (hash !== undefined && dest.endsWith('.md') && !anchors(read(dest)).has(hash))
          problems.push(`${f}:${line}: ${target}: no heading #${hash} in ${dest}`)
        if (hash !== undefined && !dest.endsWith('.md'))
          problems.push(`${f}:${line}: ${target}: an anchor into a file that is not Markdown`)
        if (statSync(path.join(ROOT, dest)).isDirectory() && hash !== undefined)
          problems.push(`${f}:${line}: ${target}: an anchor into a directory`)
      }
    }
    expect(problems).toEqual([])
    expect(count).toBeGreaterThan(50)
  })

  it("the anchors follow GitHub's rules", () => {
    expect([
      ...anchors(
        '# The in-cluster unsealer: `kseal seal` and SealedSecrets\n## Install / upgrade\n## Keys\n## Keys\n```sh\n# not a heading\n```\n',
      ),
    ]).toEqual(['the-in-cluster-unsealer-kseal-seal-and-sealedsecrets', 'install--upgrade', 'keys', 'keys-1'])
  })
})

describe('the runner', () => {
  it('splits a block into steps at its expected output, and matches output in order with … as a wildcard', () => {
    const b: Block = {file: 'x.md', line: 10, lang: 'sh', words: ['test'], body: 'a\n#> one …\n#> (exit 2)\nb\nc\n#> two'}
    expect(steps(b)).toEqual([
      {line: 11, script: 'a', expect: ['one …'], exit: 2},
      {line: 14, script: 'b\nc', expect: ['two'], exit: 0},
    ])
    expect(matches(['one …', 'two'], 'one x y\nnoise\ntwo\n')).toBe(true)
    expect(matches(['two', 'one …'], 'one x y\ntwo\n')).toBe(false)
    expect(matches(['one'], 'one x\n')).toBe(false)
  })
})

it('LICENSE is the Apache License 2.0 that package.json names, byte for byte as apache.org publishes it', () => {
  expect(JSON.parse(read('package.json')).license).toBe('Apache-2.0')
  const text = readFileSync(path.join(ROOT, 'LICENSE'))
  expect(text.length).toBe(11358)
  expect(createHash('sha256').update(text).digest('hex')).toBe('cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30')
})
