/**
 * Files in and out: expanding PATH arguments (files, directories walked for manifests, `-` for
 * stdin), reading them as text, and replacing a file atomically (temp file in the same directory,
 * fsync, rename, mode kept) so an interrupted run never leaves a truncated or half-written file.
 * A directory walk never follows a symbolic link (it is skipped with a note), and no write ever
 * replaces one: a link in a tree could point at a file outside it, which would be read, and then
 * replaced by a regular file holding plaintext.
 */
import crypto from 'node:crypto'
import {promises as fs, readdirSync, readFileSync, statSync} from 'node:fs'
import path from 'node:path'
import {ioError, keyFileError, KsealError} from './errors.js'

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json']
export const STDIN = '-'
const SKIP_DIRS = new Set(['.git', 'node_modules'])

export interface Expanded {
  files: string[]
  /** Paths that could not be expanded (a missing path is kept as a file: reading it reports it). */
  errors: KsealError[]
  /** Symbolic links met while walking directories: skipped, never followed. */
  skipped?: string[]
}

// Reading (stat, readdir, readFile) is synchronous: for a command-line run it is the cheaper way
// (measured here: an async stat and read of one small file cost 2–5 ms more than the same calls made
// synchronously, most of it starting fs/promises and libuv's thread pool), and a run reads one file
// after another anyway. The functions stay async for their callers. Writing stays async (writeAtomic).

/**
 * Expands PATH arguments into files; none or `-` means stdin. Problems with one path (a directory
 * without manifests) are collected, so every other path is still processed.
 */
export async function expandPaths(paths: string[]): Promise<Expanded> {
  if (paths.length === 0) return {files: [STDIN], errors: [], skipped: []}
  const files: string[] = []
  const errors: KsealError[] = []
  const skipped: string[] = []
  for (const p of paths) {
    const st = p === STDIN ? null : statOrNull(p)
    if (!st?.isDirectory()) {
      files.push(p)
      continue
    }
    try {
      const found = await walk(p, skipped)
      if (found.length === 0) {
        throw new KsealError('ERR_USAGE', `no manifests (${MANIFEST_EXTENSIONS.map((e) => '*' + e).join(', ')}) in this directory`, {
          file: p,
        })
      }
      files.push(...found)
    } catch (e) {
      errors.push(e as KsealError)
    }
  }
  return {files: [...new Set(files)], errors, skipped}
}

const statOrNull = (p: string) => {
  try {
    return statSync(p)
  } catch {
    return null
  }
}

async function walk(dir: string, skipped: string[]): Promise<string[]> {
  let entries
  try {
    entries = readdirSync(dir, {withFileTypes: true})
  } catch (e) {
    throw ioError(e, dir)
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const out: string[] = []
  for (const e of entries) {
    const full = path.join(dir, e.name)
    if (e.isSymbolicLink()) {
      // Noted when a walk would otherwise have read it: a manifest, or a directory.
      if (MANIFEST_EXTENSIONS.includes(path.extname(e.name).toLowerCase()) || (!SKIP_DIRS.has(e.name) && statOrNull(full)?.isDirectory()))
        skipped.push(full)
    } else if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...(await walk(full, skipped)))
    } else if (e.isFile() && MANIFEST_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) {
      out.push(full)
    }
  }
  return out
}

export async function readStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c)
  return decodeText(Buffer.concat(chunks), '(stdin)')
}

export interface ReadOptions {
  /**
   * A key or config file rather than a manifest: read as it is (no text check), and a failure names
   * the path in its message, so the error's location stays the manifest being processed.
   */
  keyFile?: boolean
}

/** Reads a file as UTF-8 text: the one way kseal reads a file. A manifest must be text (binary data or invalid UTF-8 is ERR_INPUT). */
export async function readText(file: string, o: ReadOptions = {}): Promise<string> {
  let buf: Buffer
  try {
    buf = readFileSync(file)
  } catch (e) {
    throw o.keyFile ? keyFileError(e, file) : ioError(e, file)
  }
  return o.keyFile ? buf.toString('utf8') : decodeText(buf, file)
}

/**
 * The regular files (or links to them) directly in a directory, by name: the key directories
 * (`~/.config/kseal/keys`, `--key DIR`) are read this way. Dot-files are left out with `skipHidden`.
 * A directory that cannot be read fails with its error as it came, for the caller to word.
 */
export async function filesIn(dir: string, o: {skipHidden?: boolean} = {}): Promise<string[]> {
  const names = readdirSync(dir)
    .filter((n) => !o.skipHidden || !n.startsWith('.'))
    .sort()
  const out: string[] = []
  for (const n of names) {
    const f = path.join(dir, n)
    if (statOrNull(f)?.isFile()) out.push(f)
  }
  return out
}

export function decodeText(buf: Buffer, file: string): string {
  if (buf.includes(0)) throw new KsealError('ERR_INPUT', 'not a text file (binary data)', {file})
  try {
    return new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(buf)
  } catch {
    throw new KsealError('ERR_INPUT', 'not a text file (invalid UTF-8)', {file})
  }
}

/** The note for symbolic links a walk skipped. */
export function skippedNote(skipped: string[]): string | null {
  if (!skipped.length) return null
  return `skipped ${skipped.length} symbolic link${skipped.length > 1 ? 's' : ''} (directory walks never follow links): ${skipped.join(', ')}`
}

export interface WriteOptions {
  /** Mode for a new file (default 0644). */
  defaultMode?: number
  /** The text holds plaintext values: the file is written 0600 whatever its mode was. */
  plaintext?: boolean
}

/**
 * Replaces `file` with `text` atomically: a temp file beside it (same directory, so the rename is
 * atomic), written, fsynced, given the original's mode (0600 when it holds plaintext), then renamed
 * over it. On any failure the temp file is removed and the original is left as it was. A symbolic
 * link is never replaced (nor written through): that is refused.
 */
export async function writeAtomic(file: string, text: string, opts: WriteOptions = {}): Promise<void> {
  let mode = opts.defaultMode ?? 0o644
  let owner: {uid: number; gid: number} | null = null
  try {
    const st = await fs.lstat(file)
    if (st.isSymbolicLink()) {
      throw new KsealError('ERR_INPUT', 'is a symbolic link: kseal never replaces a link in place (pass the file it points to)', {file})
    }
    mode = st.mode & 0o7777
    owner = {uid: st.uid, gid: st.gid}
  } catch (e) {
    if (e instanceof KsealError) throw e
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, file, 'write')
  }
  if (opts.plaintext) mode = 0o600
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.kseal-${crypto.randomBytes(6).toString('hex')}.tmp`)
  let fh: fs.FileHandle | undefined
  try {
    fh = await fs.open(tmp, 'wx', 0o600)
    await fh.writeFile(text, 'utf8')
    await fh.chmod(mode)
    if (owner && process.getuid?.() === 0) await fh.chown(owner.uid, owner.gid).catch(() => undefined)
    await fh.sync()
    await fh.close()
    fh = undefined
    await fs.rename(tmp, file)
  } catch (e) {
    await fh?.close().catch(() => undefined)
    await fs.rm(tmp, {force: true}).catch(() => undefined)
    throw ioError(e, file, 'write')
  }
  // Make the rename itself durable.
  const dir = await fs.open(path.dirname(file), 'r').catch(() => null)
  await dir?.sync().catch(() => undefined)
  await dir?.close()
}
