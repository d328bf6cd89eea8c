/**
 * Finding the key that opens a Secret. Keys come from `--key` URIs or paths, then `KSEAL_KEYS`
 * (files or directories, `:`-separated), then `$XDG_CONFIG_HOME/kseal/keys`; each source is read
 * only when the ones before it hold no key for the recipients at hand. The envelope's key ids pick
 * the identity directly: no key is ever tried on an entry it does not match.
 */
import {statSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {type Backends, splitUri} from '../../keys/index.js'
import type {Identity, KeyBinding, Recipient, RecipientEntry} from '../../keys/types.js'
import {readKeyFile} from '../../keys/keyfile.js'
import {keyFileError, KsealError} from '../core/errors.js'
import {filesIn} from '../core/files.js'

export interface KeySources {
  /** Explicit `--key` values: `scheme:rest` URIs or plain paths (files or directories). */
  keys: string[]
  env: Record<string, string | undefined>
}

export function configKeysDir(env: Record<string, string | undefined>): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config')
  return path.join(base, 'kseal', 'keys')
}

interface Stage {
  label: string
  load: () => Promise<Identity[]>
  loaded?: Promise<Identity[]>
}

export class Keyring {
  private readonly stages: Stage[]
  /** Ambient identities per backend (AWS credentials for awskms), loaded for that backend's entries only. */
  private readonly ambient = new Map<string, Promise<Identity[]>>()

  constructor(
    private readonly backends: Backends,
    sources: KeySources,
  ) {
    const cwd = backends.ctx.cwd
    this.stages = []
    if (sources.keys.length) this.stages.push({label: '--key', load: () => this.loadAll(sources.keys, cwd, true)})
    const envKeys = sources.env.KSEAL_KEYS?.split(':').filter(Boolean) ?? []
    if (envKeys.length) this.stages.push({label: 'KSEAL_KEYS', load: () => this.loadAll(envKeys, cwd, true)})
    const dir = configKeysDir(sources.env)
    this.stages.push({label: dir.replace(os.homedir(), '~'), load: () => this.loadAll([dir], cwd, false)})
  }

  private async loadAll(specs: string[], cwd: string, explicit: boolean): Promise<Identity[]> {
    const out: Identity[] = []
    for (const spec of specs) out.push(...(await this.load(spec, cwd, explicit)))
    return out
  }

  private async load(spec: string, cwd: string, explicit: boolean): Promise<Identity[]> {
    const uri = splitUri(spec)
    if (uri) return (await this.backends.get(uri.scheme)).identities(uri.rest, this.backends.ctx)
    const file = path.resolve(cwd, spec.replace(/^~(?=\/)/, os.homedir()))
    let st
    try {
      st = statSync(file)
    } catch (e) {
      if (!explicit && (e as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw keyFileError(e, file)
    }
    if (st.isDirectory()) {
      const files = await filesIn(file).catch((e) => {
        throw keyFileError(e, file)
      })
      const out: Identity[] = []
      for (const f of files) out.push(...(await this.backends.identitiesFromFile(f, await readKeyFile(f))))
      return out
    }
    const text = await readKeyFile(file)
    const ids = await this.backends.identitiesFromFile(file, text)
    if (ids.length === 0 && explicit) throw new KsealError('ERR_CONFIG', `${spec}: not a private key kseal can use`)
    return ids
  }

  /**
   * Loads the first key source now rather than at the first unwrap, so its backends get ready (the
   * RSA pool's threads boot) while a bulk run reads its files. A source that fails to load fails at
   * the first unwrap, as it would have; a run that unwraps nothing never hears of it.
   */
  async prepare(): Promise<void> {
    const first = this.stages[0]
    if (!first) return
    first.loaded ??= first.load()
    await first.loaded.catch(() => undefined)
  }

  /** Every identity from every source (loading them all). */
  async all(): Promise<Identity[]> {
    const out: Identity[] = []
    for (const stage of this.stages) {
      stage.loaded ??= stage.load()
      out.push(...(await stage.loaded))
    }
    return out
  }

  /**
   * Unwraps the data key from the first recipient entry whose key is held, and says which entry
   * opened it (the recipient whose key demonstrably holds it). Throws ERR_NO_KEY when no source holds
   * a key for any entry, or the backend's error when the one that matched failed.
   */
  readonly unwrap: Unwrap = async (entries, binding) => {
    const attempt: Attempt = {failure: null}
    for (const stage of this.stages) {
      stage.loaded ??= stage.load()
      const got = await unwrapWith(entries, await stage.loaded, binding, attempt)
      if (got) return got
    }
    // Last, identities that need no key file (cloud credentials), for the backends of these entries
    // that no key source above has offered an identity for: a KMS call is made only when no held
    // key opens the Secret.
    const offered = new Set<string>()
    for (const stage of this.stages) for (const id of await stage.loaded!) offered.add(id.backend)
    for (const backend of new Set(entries.map((e) => e.backend))) {
      if (offered.has(backend)) continue
      const got = await unwrapWith(entries, await this.ambientOf(backend), binding, attempt)
      if (got) return got
    }
    if (attempt.failure) throw attempt.failure
    const wanted = entries.map((e) => `${e.backend}:${e.kid}`).join(', ')
    throw new KsealError(
      'ERR_NO_KEY',
      `no key for this Secret: it is encrypted for ${wanted} (looked in ${this.stages.map((s) => s.label).join(', ')})`,
    )
  }

  private ambientOf(backend: string): Promise<Identity[]> {
    let ambient = this.ambient.get(backend)
    if (!ambient) {
      ambient = this.backends.ambient(backend)
      this.ambient.set(backend, ambient)
    }
    return ambient
  }

  /**
   * A recipient for an entry that this keyring demonstrably holds: a loaded identity with that key
   * id that can produce its public half, or the entry that just opened the Secret (`openedBy`; for a
   * KMS key, the key that KMS used). Null for an entry that is merely in the file.
   */
  async heldRecipient(entry: RecipientEntry, openedBy?: RecipientEntry): Promise<Recipient | null> {
    for (const ident of await this.all()) {
      if (ident.backend === entry.backend && ident.kid === entry.kid && ident.recipient) return ident.recipient()
    }
    if (openedBy && openedBy.backend === entry.backend && openedBy.kid === entry.kid && openedBy.wrapped === entry.wrapped) {
      return this.backends.recipient(`${entry.backend}:${entry.kid}`)
    }
    return null
  }
}

/** A data key and the recipient entry that opened it. */
export interface Unwrapped {
  dataKey: Uint8Array
  entry: RecipientEntry
}

/**
 * Opens a data key from an envelope's recipient entries, bound as the envelope says: the one
 * operation of every holder of keys — the CLI's Keyring, the keys `kseal unseal --key` names, the
 * controller's key store. Throws ERR_NO_KEY when it holds no key for any entry.
 */
export type Unwrap = (entries: RecipientEntry[], binding: KeyBinding) => Promise<Unwrapped>

export interface Attempt {
  /** The first error an identity that matched an entry raised (wrong key, altered entry, service). */
  failure: unknown
}

/**
 * Tries each entry with the identities that hold its key id (or can try any entry of their backend)
 * and returns the first data key one opens. Each identity tries at most one entry per key id: a file
 * that repeats a held key id a thousand times costs one key operation, not a thousand. Failures are
 * kept in `attempt`, so a later source may still succeed and the caller reports the first failure
 * only when none does.
 */
export async function unwrapWith(
  entries: RecipientEntry[],
  identities: Identity[],
  binding: KeyBinding,
  attempt: Attempt,
): Promise<Unwrapped | null> {
  const tried = new Set<string>()
  for (const entry of entries) {
    for (const [i, id] of identities.entries()) {
      if (id.backend !== entry.backend || (id.kid !== '*' && id.kid !== entry.kid)) continue
      const once = `${i} ${entry.backend}:${entry.kid}`
      if (tried.has(once)) continue
      tried.add(once)
      try {
        const dk = await id.unwrap(entry, binding)
        if (dk) return {dataKey: dk, entry}
      } catch (e) {
        attempt.failure ??= e
      }
    }
  }
  return null
}
