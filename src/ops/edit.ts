/**
 * `kseal edit`: a manifest file opened decrypted in the user's editor and re-encrypted on save.
 *
 * Every encrypted Secret is re-encrypted with its own data key, matched by namespace/name, so
 * values whose plaintext did not change keep their exact ciphertext and the git diff shows only
 * what was edited (plus the MAC). The plaintext lives only in a 0600 file inside a private 0700
 * directory, removed on every way out: save, error, editor failure, SIGINT/SIGTERM/SIGHUP. SOPS
 * files are edited as SOPS (their data keys and rules kept, unchanged values' ciphertext kept).
 */
import {type ChildProcess, spawn} from 'node:child_process'
import {promises as fs, existsSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Scalar} from 'yaml'
import type {Recipient} from '../../keys/types.js'
import type {Scope} from '../envelope/binding.js'
import type {CreationRules} from '../config/config.js'
import {applyEdits, type Edit, insertEnvelopeEdit, removeEnvelopeEdit, tokenEdit} from '../manifest/edits.js'
import {computeMac, encryptValue, envelopeObject, type Slot} from '../envelope/envelope.js'
import {isKsealError, KsealError} from '../core/errors.js'
import {readText, writeAtomic} from '../core/files.js'
import type {Keyring} from '../keyring/keyring.js'
import {ENVELOPE_KEY, parseManifests, type SecretDoc} from '../manifest/parse.js'
import {valueBytes} from '../manifest/secrets.js'
import {type EncryptOptions, encryptSecret, type OpenedSecret, openSecret, plaintextEdits} from '../secret/secret.js'
import {looksLikeSops} from '../formats/detect.js'
import type {SopsKeys} from './decrypt.js'

/** One value of an encrypted Secret as it was in the file, so an unchanged value can be put back byte for byte. */
interface KeptValue {
  bytes: Buffer
  token: string
  /** The token's scalar exactly as written (quotes, block header and all). */
  source: string
  block: boolean
}

interface OpenedEntry {
  id: string
  opened: OpenedSecret
  values: Map<string, KeptValue>
}

/** A file ready for the editor. */
export interface EditView {
  /** The file as read. */
  original: string
  /** What the editor shows: every encrypted Secret decrypted, its envelope taken out. */
  plain: string
  secrets: OpenedEntry[]
  /** True when the file holds Secret values that were never encrypted (they are encrypted on save). */
  hasPlaintext: boolean
}

export interface ReencryptOptions {
  /** For Secrets that have no key yet: new ones, or ones that were plaintext. */
  recipients: Recipient[]
  /** An explicit scope for those Secrets; else the rule's, else strict. */
  scope?: Scope
  keyring: Keyring
  /** `.kseal.yaml` creation rules: used for Secrets that have no key yet when there is no -r. */
  rules?: CreationRules
}

/** The options that encrypt a Secret with no key yet: -r if given, else its `.kseal.yaml` rule. */
async function newSecretOptions(file: string, s: SecretDoc, opts: ReencryptOptions): Promise<EncryptOptions> {
  if (opts.recipients.length > 0 || !opts.rules) return {recipients: opts.recipients, scope: opts.scope ?? 'strict', keyring: opts.keyring}
  return opts.rules.optionsFor(file, s, {scope: opts.scope, keyring: opts.keyring})
}

const identity = (s: SecretDoc) => `${s.namespace}/${s.name}`
const place = (field: string, key: string) => `${field}.${key}`
const isBlock = (n: Scalar) => n.type === Scalar.BLOCK_LITERAL || n.type === Scalar.BLOCK_FOLDED
const hasPlainValues = (s: SecretDoc) => s.values.some((v) => v.value !== null && !v.encrypted)

/** Decrypts every encrypted Secret of a file (one key operation each) into the text the editor shows. */
async function openForEdit(text: string, file: string, keyring: Keyring): Promise<EditView> {
  const p = parseManifests(text, file)
  const opened = await Promise.all(p.secrets.map((s) => openSecret(s, keyring)))
  const edits: Edit[] = []
  const secrets: OpenedEntry[] = []
  p.secrets.forEach((s, i) => {
    const o = opened[i]
    if (!o) return
    edits.push(...plaintextEdits(p.text, p.eol, s, o), removeEnvelopeEdit(p.text, s.map, s.envelopePair!))
    const values = new Map<string, KeptValue>()
    s.values.forEach((v, j) => {
      if (!v.node || v.value === null) return
      values.set(place(v.field, v.key), {
        bytes: o.values[j].bytes!,
        token: v.value.trim(),
        source: text.slice(v.node.range![0], v.node.range![1]),
        block: isBlock(v.node),
      })
    })
    secrets.push({id: identity(s), opened: o, values})
  })
  return {
    original: text,
    plain: applyEdits(text, edits),
    secrets,
    hasPlaintext: p.secrets.some((s) => !s.envelopePair && hasPlainValues(s)),
  }
}

/**
 * Encrypts the edited text again. A Secret that was encrypted (same namespace/name) keeps its data
 * key, recipients and scope; its unchanged values keep their ciphertext, changed and new ones are
 * encrypted with its key. Any other Secret with values is encrypted for `opts.recipients`.
 * Problems with the edited content are KsealErrors the user can fix in the editor.
 */
async function reencryptEdited(view: EditView, edited: string, file: string, opts: ReencryptOptions): Promise<string> {
  const p = parseManifests(edited, file)
  const pool = new Map<string, OpenedEntry[]>()
  for (const e of view.secrets) pool.set(e.id, [...(pool.get(e.id) ?? []), e])
  const work = p.secrets.map((s) => ({s, prev: pool.get(identity(s))?.shift()}))
  const edits = (
    await Promise.all(
      work.map(async ({s, prev}) => {
        try {
          if (s.envelopePair)
            throw new KsealError('ERR_INPUT', `has a "${ENVELOPE_KEY}:" entry: the editor shows Secrets without their envelope; remove it`)
          if (prev) return reencryptSecret(p.text, p.eol, s, prev)
          if (hasPlainValues(s) && opts.recipients.length === 0 && !opts.rules) {
            throw new KsealError(
              'ERR_INPUT',
              'is not one of the encrypted Secrets of this file (new, or renamed): pass -r, or add a .kseal.yaml rule, to choose who can decrypt it',
            )
          }
          return await encryptSecret(p.text, p.eol, s, await newSecretOptions(file, s, opts))
        } catch (e) {
          throw isKsealError(e) ? e.at(s.where) : e
        }
      }),
    )
  ).flat()
  const out = applyEdits(edited, edits)
  // Never write plaintext: every Secret value in the result must be encrypted.
  if (parseManifests(out, file).secrets.some(hasPlainValues)) {
    throw new KsealError('ERR_IO', 'internal error: the re-encrypted file still holds plaintext; nothing was written', {file})
  }
  return out
}

function reencryptSecret(text: string, eol: string, s: SecretDoc, prev: OpenedEntry): Edit[] {
  const {keys, binding, envelope} = prev.opened
  const edits: Edit[] = []
  const slots: Slot[] = s.values.map((v) => {
    if (v.value === null) return {field: v.field, key: v.key, token: null}
    const where = {key: place(v.field, v.key)}
    if (v.encrypted) throw new KsealError('ERR_INPUT', 'holds a kseal token: write the plaintext value instead', where)
    const bytes = valueBytes(v)
    const old = prev.values.get(place(v.field, v.key))
    if (old?.bytes.equals(bytes)) {
      edits.push(keepToken(text, eol, v.node!, old))
      return {field: v.field, key: v.key, token: old.token}
    }
    const token = encryptValue(keys, binding, v.field, v.key, bytes)
    edits.push(tokenEdit(text, v.node!, token, eol))
    return {field: v.field, key: v.key, token}
  })
  const mac = computeMac(keys, binding, slots, envelope.recipients)
  edits.push(insertEnvelopeEdit(text, s.map, envelopeObject({...envelope, mac}), ENVELOPE_KEY, eol))
  return edits
}

/** Puts an unchanged value's token back exactly as it was written, where the layout allows. */
function keepToken(text: string, eol: string, node: Scalar, old: KeptValue): Edit {
  const fresh = tokenEdit(text, node, old.token, eol)
  if (!old.block && !isBlock(node)) return {...fresh, text: old.source}
  if (old.block && isBlock(node)) {
    // Same token line at the edited indentation, under the original header (e.g. `>-`, which
    // decryption may have turned into `|-` for a multi-line value).
    const header = old.source.slice(0, old.source.search(/\r?\n|$/))
    return {...fresh, text: header + fresh.text.slice(fresh.text.indexOf(eol))}
  }
  return fresh
}

// ---------------------------------------------------------------------------------------------
// The session: private temp file, editor, reopen on a mistake, signals.

/** The editor command, as git finds it: $VISUAL, then $EDITOR, then vi. */
function editorCommand(env: Record<string, string | undefined>): string {
  return env.VISUAL?.trim() || env.EDITOR?.trim() || 'vi'
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * A private directory (mode 0700, from mkdtemp) holding one file (mode 0600). It removes itself on
 * remove(), on process exit, and on SIGINT/SIGTERM/SIGHUP — which also stop the running editor
 * and end the process with 128 + the signal number.
 */
class PrivateTemp {
  child: ChildProcess | null = null
  private removed = false
  private readonly onExit = () => this.remove()
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.child?.kill(sig)
    this.remove()
    process.stderr.write(`kseal: interrupted (${sig}); ${this.label} was not changed\n`)
    process.exit(128 + (os.constants.signals[sig] ?? 1))
  }

  private constructor(
    readonly dir: string,
    readonly file: string,
    private readonly label: string,
  ) {
    process.on('exit', this.onExit)
    for (const s of SIGNALS) process.on(s, this.onSignal)
  }

  static async create(base: string, name: string, content: string, label: string): Promise<PrivateTemp> {
    const dir = await fs.mkdtemp(path.join(base, 'kseal-edit-'))
    const tmp = new PrivateTemp(dir, path.join(dir, name), label)
    try {
      await fs.chmod(dir, 0o700)
      const fh = await fs.open(tmp.file, 'wx', 0o600)
      try {
        await fh.chmod(0o600)
        await fh.writeFile(content, 'utf8')
      } finally {
        await fh.close()
      }
    } catch (e) {
      tmp.remove()
      throw new KsealError('ERR_IO', `cannot create a private temporary file: ${(e as Error).message}`)
    }
    return tmp
  }

  read(): Promise<string> {
    return readText(this.file)
  }

  remove(): void {
    if (this.removed) return
    this.removed = true
    rmSync(this.dir, {recursive: true, force: true})
    process.off('exit', this.onExit)
    for (const s of SIGNALS) process.off(s, this.onSignal)
  }
}

/** Where the private directory goes: $XDG_RUNTIME_DIR (per-user, usually in memory) if it exists, else the temp dir. */
function tempBase(env: Record<string, string | undefined>): string {
  const runtime = env.XDG_RUNTIME_DIR
  return runtime && path.isAbsolute(runtime) && existsSync(runtime) ? runtime : os.tmpdir()
}

/**
 * Runs the editor on a file like git does: through the shell, so `code --wait` or `vim -n` work.
 * A plain command is exec'd, so the editor itself is the child a signal is passed on to.
 */
function runEditor(editor: string, file: string, tmp: PrivateTemp): Promise<void> {
  return new Promise((resolve, reject) => {
    const exec = /[;&|<>()$`\n]/.test(editor) ? '' : 'exec '
    const child =
      process.platform === 'win32'
        ? spawn(`${editor} "${file}"`, {stdio: 'inherit', shell: true})
        : spawn('sh', ['-c', `${exec}${editor} "$@"`, editor, file], {stdio: 'inherit'})
    tmp.child = child
    child.on('error', (e) => {
      tmp.child = null
      reject(new KsealError('ERR_IO', `cannot run the editor (${editor}): ${e.message}; nothing was changed`))
    })
    child.on('exit', (code, signal) => {
      tmp.child = null
      if (signal) reject(new KsealError('ERR_IO', `the editor (${editor}) was killed by ${signal}; nothing was changed`))
      else if (code !== 0) reject(new KsealError('ERR_IO', `the editor (${editor}) exited with status ${code}; nothing was changed`))
      else resolve()
    })
  })
}

export interface EditSessionOptions extends ReencryptOptions {
  env: Record<string, string | undefined>
  /** The keys for SOPS files; without it a SOPS file is edited as a plain manifest. */
  sops?: SopsKeys
  /** Asks whether to reopen the editor after a mistake; null when there is no one to ask. */
  ask: ((question: string) => Promise<boolean>) | null
  /** A line for the user on stderr. */
  tell: (line: string) => void
}

/** Edits one file. Returns whether it was written. Nothing is written unless the whole edit re-encrypts. */
export async function editFile(file: string, opts: EditSessionOptions): Promise<'written' | 'unchanged'> {
  const original = await readText(file)
  if (opts.sops && looksLikeSops(original)) return editSopsFile(file, original, opts)
  const view = await openForEdit(original, file, opts.keyring)
  if (opts.recipients.length === 0 && !opts.rules) {
    if (view.hasPlaintext) {
      throw new KsealError(
        'ERR_USAGE',
        'holds a Secret that is not encrypted: encrypt it first (kseal encrypt -i), or pass -r or add a .kseal.yaml rule to encrypt it on save',
        {file},
      )
    }
    if (view.secrets.length === 0)
      throw new KsealError(
        'ERR_USAGE',
        'holds no encrypted Secret (pass -r, or add a .kseal.yaml rule, to add one and encrypt it on save)',
        {file},
      )
  }
  return editLoop(file, original, view.plain, view.hasPlaintext, (edited) => reencryptEdited(view, edited, file, opts), opts)
}

/**
 * Edits a SOPS file: shown decrypted (the sops blocks out), re-encrypted on save with the same data
 * keys, recipients and rules; a value whose plaintext did not change keeps its exact `ENC[…]` (sops
 * itself re-encrypts everything), so the diff shows the changed values, `lastmodified` and the MAC.
 */
async function editSopsFile(file: string, original: string, opts: EditSessionOptions): Promise<'written' | 'unchanged'> {
  const {decryptedText, openSops, parseSops, reencryptSops} = await import('../formats/sops/index.js')
  const sops = parseSops(original, {file})
  if (parseManifests(original, file).secrets.some((s) => s.envelopePair)) {
    throw new KsealError(
      'ERR_USAGE',
      'holds both SOPS and kseal Secrets: edit is one format per file; split them, or kseal import the SOPS ones',
      {file},
    )
  }
  const opened = await openSops(sops, await opts.sops!())
  const plain = decryptedText(opened)
  return editLoop(file, original, plain, false, async (edited) => reencryptSops(opened, edited), opts)
}

/** The editor on the plaintext until it re-encrypts (a mistake reopens it when there is someone to ask), then the atomic write. */
async function editLoop(
  file: string,
  original: string,
  plain: string,
  hasPlaintext: boolean,
  reencrypt: (edited: string) => Promise<string>,
  opts: EditSessionOptions,
): Promise<'written' | 'unchanged'> {
  const tmp = await PrivateTemp.create(tempBase(opts.env), path.basename(file), plain, file)
  let output: string
  try {
    const editor = editorCommand(opts.env)
    for (;;) {
      await runEditor(editor, tmp.file, tmp)
      const edited = await tmp.read()
      if (edited === plain && !hasPlaintext) return 'unchanged'
      try {
        output = await reencrypt(edited)
        break
      } catch (e) {
        if (!isKsealError(e) || e.code === 'ERR_IO' || e.code === 'ERR_BACKEND') throw e
        opts.tell(e.at({file}).line)
        if (opts.ask && (await opts.ask('Reopen the editor to fix it? [Y/n] '))) continue
        throw new KsealError('ERR_INPUT', 'the edit was not saved: nothing was changed', {file})
      }
    }
  } finally {
    tmp.remove()
  }
  if (output === original) return 'unchanged'
  if ((await readText(file)) !== original) {
    throw new KsealError('ERR_IO', 'changed on disk while it was being edited: nothing was written (run kseal edit again)', {file})
  }
  await writeAtomic(file, output)
  return 'written'
}

/** A yes/no question on the terminal (default yes), or null when stdin is not a terminal. */
export function terminalAsk(): ((question: string) => Promise<boolean>) | null {
  if (!process.stdin.isTTY) return null
  return async (question) => {
    const readline = await import('node:readline')
    const rl = readline.createInterface({input: process.stdin, output: process.stderr})
    try {
      const answer = await new Promise<string | null>((resolve) => {
        rl.once('close', () => resolve(null))
        rl.question(question, resolve)
      })
      return answer !== null && !/^\s*n/i.test(answer)
    } finally {
      rl.close()
    }
  }
}
