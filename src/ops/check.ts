/**
 * `kseal check`: the pre-commit guard. Finds every v1 Secret (also inside Lists) that holds a value
 * in plaintext, in files or in what git is about to commit (the index, not the working tree).
 */
import path from 'node:path'
import {KsealError, type Where} from '../core/errors.js'
import {MANIFEST_EXTENSIONS} from '../core/files.js'
import {readSecrets} from '../manifest/read.js'
import {looksForeign} from '../formats/detect.js'

/** The note for a format 1 Secret, shared by check and inspect. */
export const V1_NOTE = 'recipients not authenticated (format v1): run kseal rotate to upgrade'

export interface Finding {
  where: Where
  /** `field.key` of every plaintext value, in document order. */
  keys: string[]
}

/**
 * What check reports about one file: Secrets holding plaintext values, and encrypted Secrets still
 * in format 1 (their recipients are not authenticated: a warning, not a failure). SOPS and kubesec
 * Secrets are encrypted as their formats say (foreign.ts): a SOPS file whose rules leave a value
 * in plaintext is still a finding. foreign.ts, and the SOPS code with it, is loaded only for a text
 * that looks like one (formats/detect.ts): check is a hot command (src/cli/hot.ts).
 */
export async function checkManifests(text: string, file: string): Promise<{plaintext: Finding[]; v1: Where[]}> {
  const foreign = looksForeign(text) ? (await import('./foreign.js')).checkForeign(text, file) : null
  const secrets = readSecrets(text, file).secrets.filter((s) => !foreign?.documents.has(s.where.document!))
  const found = secrets.flatMap((s) => {
    const keys = s.values.filter((v) => v.value !== null && !v.encrypted).map((v) => `${v.field}.${v.key}`)
    return keys.length ? [{where: s.where, keys}] : []
  })
  const plaintext = foreign ? [...found, ...foreign.plaintext].sort((a, b) => a.where.document! - b.where.document!) : found
  const v1 = secrets.filter((s) => s.envelopePair && (s.envelopeRaw as {version?: unknown} | null)?.version === 1).map((s) => s.where)
  return {plaintext, v1}
}

/**
 * Whether a file is a Helm chart template: under a `templates/` directory, holding a template action
 * (`{{`). A template is not a manifest — its Secrets exist only once rendered, and its expressions
 * are not YAML values — so check skips it, with a note; what it renders is checked instead:
 * `helm template CHART | kseal check -`.
 */
export function isHelmTemplate(file: string, text: string): boolean {
  return file.split(/[\\/]/).slice(0, -1).includes('templates') && text.includes('{{')
}

/**
 * Whether text that could not be parsed may hold a Secret (then it cannot be vouched for); other
 * unparseable files — Helm templates, say — are none of check's business.
 */
export function mayHoldSecret(text: string): boolean {
  return /^\s*(?:-\s+)?["']?kind["']?\s*:\s*["']?Secret["']?\s*,?\s*$/m.test(text) || /"kind"\s*:\s*"Secret"/.test(text)
}

export interface StagedFile {
  /** Path relative to the repository's top level, as git shows it. */
  path: string
  text: Buffer
}

/**
 * The manifests (*.yaml, *.yml, *.json) added, copied, modified or renamed in git's index — the
 * blobs that the next commit will hold — optionally limited by pathspecs (relative to cwd).
 */
export async function stagedManifests(cwd: string, pathspecs: string[]): Promise<StagedFile[]> {
  // --raw gives the index blob id of each staged file, so no path is read from the working tree.
  const raw = await git(cwd, [
    'diff',
    '--cached',
    '--raw',
    '-z',
    '--no-abbrev',
    '--no-renames',
    '--diff-filter=ACMR',
    '--',
    ...pathspecs,
  ]).catch((e: KsealError) => {
    throw new KsealError('ERR_USAGE', `--staged needs a git repository: ${e.message}`)
  })
  const fields = raw.toString('utf8').split('\0')
  const entries: {path: string; blob: string}[] = []
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [, mode, , blob] = fields[i].replace(/^:/, '').split(' ')
    const file = fields[i + 1]
    if (mode === '100644' || mode === '100755') {
      if (MANIFEST_EXTENSIONS.includes(path.extname(file).toLowerCase())) entries.push({path: file, blob})
    }
  }
  if (entries.length === 0) return []
  const out = await git(cwd, ['cat-file', '--batch'], entries.map((e) => e.blob).join('\n') + '\n')
  const files: StagedFile[] = []
  let at = 0
  for (const e of entries) {
    const nl = out.indexOf(0x0a, at)
    const header = out.subarray(at, nl).toString('utf8').split(' ')
    if (header[0] !== e.blob || header[1] !== 'blob') throw new KsealError('ERR_IO', `git cat-file: unexpected answer for ${e.path}`)
    const size = Number(header[2])
    files.push({path: e.path, text: out.subarray(nl + 1, nl + 1 + size)})
    at = nl + 1 + size + 1
  }
  return files
}

function git(cwd: string, args: string[], input?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Loaded here, only for --staged: check of files is on the start-up path of every hook run.
    const {spawn} = process.getBuiltinModule('node:child_process')
    const child = spawn('git', args, {cwd, stdio: ['pipe', 'pipe', 'pipe']})
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', (e) => reject(new KsealError('ERR_IO', `cannot run git: ${e.message}`)))
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out))
      else reject(new KsealError('ERR_IO', `git ${args[0]} failed: ${err.trim().split('\n')[0] || `exit ${code}`}`))
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(input ?? '')
  })
}
