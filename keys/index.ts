/**
 * The backend registry: URI scheme → backend module, each imported only when a URI or a key file
 * of its kind is actually used (the AWS SDK, say, loads only for `awskms:` keys).
 */
import {KsealError} from '../src/core/errors.js'
import {isAgeKeyFile, isRsaKeyFile} from './keyfile.js'
import type {Backend, BackendContext, Identity, Recipient} from './types.js'

interface Registration {
  load: () => Promise<Backend & {identitiesFromFile?(file: string, text: string, ctx: BackendContext): Promise<Identity[]>}>
  /** True when a key file's text belongs to this backend. */
  sniff?: (text: string) => boolean
  /** The backend offers ambient identities (e.g. AWS credentials); its module loads only for its own entries. */
  ambient?: boolean
}

const REGISTRY: Record<string, Registration> = {
  rsa: {load: async () => (await import('./rsa.js')).backend(), sniff: isRsaKeyFile},
  awskms: {load: async () => (await import('./awskms.js')).backend(), ambient: true},
  age: {load: async () => (await import('./age.js')).backend(), sniff: isAgeKeyFile},
  pgp: {load: async () => (await import('./pgp.js')).backend(), ambient: true},
}

export function backendNames(): string[] {
  return Object.keys(REGISTRY)
}

export function splitUri(uri: string): {scheme: string; rest: string} | null {
  const m = /^([a-z][a-z0-9+.-]*):(.+)$/.exec(uri)
  return m && m[1] in REGISTRY ? {scheme: m[1], rest: m[2]} : null
}

/** Backends loaded in this run; one instance each, so their pools and clients are shared. */
export class Backends {
  private loaded = new Map<
    string,
    Promise<Backend & {identitiesFromFile?(file: string, text: string, ctx: BackendContext): Promise<Identity[]>}>
  >()

  private loading: Promise<void> = Promise.resolve()

  constructor(readonly ctx: BackendContext) {}

  get(name: string) {
    const reg = REGISTRY[name]
    if (!reg) throw new KsealError('ERR_USAGE', `unknown key backend "${name}" (known: ${backendNames().join(', ')})`)
    let b = this.loaded.get(name)
    if (!b) {
      // Backend modules load one after another: they share modules (keyfile.ts), and jest's ESM
      // runtime fails to link a shared module that two concurrent imports reach at once.
      b = this.loading.then(() => reg.load())
      this.loading = b.then(
        () => undefined,
        () => undefined,
      )
      this.loaded.set(name, b)
    }
    return b
  }

  /** Parses a recipient URI such as `rsa:team.crt`. */
  async recipient(uri: string): Promise<Recipient> {
    const parts = splitUri(uri)
    if (!parts) {
      throw new KsealError(
        'ERR_USAGE',
        `recipient "${uri}" is not a key URI (expected one of: ${backendNames()
          .map((n) => `${n}:...`)
          .join(', ')})`,
      )
    }
    return (await this.get(parts.scheme)).recipient(parts.rest, this.ctx)
  }

  /** The backend whose key files look like this text, if any. */
  sniff(text: string): string | undefined {
    return Object.entries(REGISTRY).find(([, r]) => r.sniff?.(text))?.[0]
  }

  /** Identities in a key file, by sniffing its content. Files of no known kind give none. */
  async identitiesFromFile(file: string, text: string): Promise<Identity[]> {
    const name = this.sniff(text)
    if (!name) return []
    const b = await this.get(name)
    return b.identitiesFromFile ? b.identitiesFromFile(file, text, this.ctx) : []
  }

  /** Ambient identities of a backend (none unless it is registered with `ambient`). */
  async ambient(name: string): Promise<Identity[]> {
    if (!REGISTRY[name]?.ambient) return []
    const b = await this.get(name)
    return b.ambient ? b.ambient(this.ctx) : []
  }

  async close(): Promise<void> {
    const all = await Promise.all(this.loaded.values())
    this.loaded.clear()
    await Promise.all(all.map((b) => b.close?.()))
  }
}
