/**
 * OpenPGP keys through the user's own `gpg` (`pgp:<fingerprint>`): their keyring, GNUPGHOME,
 * gpg-agent and pinentry, exactly as sops and kubesec use them. The wrapped data key is a binary
 * OpenPGP message encrypted to that key, whose plaintext is the 32-byte data key followed by the
 * binding label (as for age), so `gpg --decrypt` opens it and unwrapping refuses a wrapped key moved
 * to another Secret. The key id is the key's full primary fingerprint (40 or 64 hex digits).
 *
 * Identities are whatever the user's gpg can decrypt: the Keyring offers the gpg keyring like KMS
 * credentials (ambient, for `pgp` entries only, after every key file), and an entry is tried only
 * when its fingerprint has a secret key there. `--key pgp:<fingerprint>` limits decryption to that key.
 *
 * gpg runs with `--batch`; secrets travel only on stdin and stdout, never on its command line; its
 * machine-readable status lines (`--status-fd`) tell a missing secret key, a bad passphrase, an
 * agent that cannot ask for one, and altered data apart. The binary is `KSEAL_GPG`, else sops's
 * `SOPS_GPG_EXEC`, else `gpg` on PATH.
 */
import {spawn} from 'node:child_process'
import {KsealError} from '../src/core/errors.js'
import {Limiter} from '../src/core/limit.js'
import {type Backend, type BackendContext, type KeyBinding, type Identity, type Recipient, type RecipientEntry} from './types.js'

export const NAME = 'pgp'
const DATA_KEY_BYTES = 32
/** gpg processes in flight per run (the agent serialises passphrase prompts anyway). */
const CONCURRENCY = 4
/** Wrapped keys are a few hundred bytes; anything this large is not one. */
const MAX_MESSAGE_BYTES = 64 * 1024
/** What kseal keeps of gpg's stderr (status and diagnostics), whatever gpg prints. */
const MAX_STDERR_BYTES = 256 * 1024
const FPR_RE = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/

/** A fingerprint as users paste it (spaces, lower case, `0x`) in the canonical form: upper-case hex, no spaces. */
export function normalizeFingerprint(s: string): string | null {
  const f = s.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase()
  return FPR_RE.test(f) ? f : null
}

function parseFingerprint(rest: string): string {
  const f = normalizeFingerprint(rest)
  if (!f)
    throw new KsealError(
      'ERR_USAGE',
      `pgp:${rest}: expected a full key fingerprint (40 hex digits, as gpg --fingerprint prints), e.g. pgp:FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4`,
    )
  return f
}

/** One `[GNUPG:] KEYWORD args` line. */
export interface StatusLine {
  keyword: string
  args: string[]
}

interface RunResult {
  code: number | null
  stdout: Buffer
  status: StatusLine[]
  /** gpg's human-readable lines (never a secret: plaintext goes to stdout only). */
  diagnostics: string[]
}

/** A key from `gpg --list-keys --with-colons`: the primary fingerprint and what each (sub)key can do. */
export interface GpgKey {
  fingerprint: string
  keys: {fingerprint: string; capabilities: string; validity: string; secret: boolean}[]
}

/** How a decryption ended, for the caller to put in its own words. */
export type DecryptOutcome =
  | {ok: true; plaintext: Buffer; subkey: string; primary: string; signers: string[]}
  | {
      ok: false
      reason: 'no-secret-key' | 'bad-passphrase' | 'no-passphrase' | 'altered' | 'not-encrypted' | 'not-signed' | 'too-large' | 'failed'
      detail: string
    }

/** The gpg that the user has, run with the injected environment. */
export class Gpg {
  private readonly limiter = new Limiter(CONCURRENCY)
  private secrets?: Promise<Set<string>>

  constructor(private readonly ctx: BackendContext) {}

  get bin(): string {
    return this.ctx.env.KSEAL_GPG || this.ctx.env.SOPS_GPG_EXEC || 'gpg'
  }

  /** Runs gpg once; stdout is capped at `maxOutput` bytes (gpg is killed beyond it). */
  run(args: string[], input: Buffer | string, maxOutput: number): Promise<RunResult & {overflow: boolean}> {
    return this.limiter.run(
      () =>
        new Promise((resolve, reject) => {
          const child = spawn(this.bin, ['--batch', '--no-tty', '--status-fd', '2', ...args], {
            cwd: this.ctx.cwd,
            env: this.ctx.env as NodeJS.ProcessEnv,
            stdio: ['pipe', 'pipe', 'pipe'],
          })
          const out: Buffer[] = []
          let outBytes = 0
          let overflow = false
          let err = ''
          child.stdout.on('data', (d: Buffer) => {
            outBytes += d.length
            if (outBytes > maxOutput) {
              overflow = true
              child.kill('SIGKILL')
            } else {
              out.push(d)
            }
          })
          child.stderr.setEncoding('utf8').on('data', (d: string) => {
            if (err.length < MAX_STDERR_BYTES) err += d
          })
          child.on('error', (e: NodeJS.ErrnoException) => {
            reject(
              e.code === 'ENOENT'
                ? new KsealError('ERR_BACKEND', `gpg not found (${this.bin}): install GnuPG 2.2 or later, or set KSEAL_GPG to its path`)
                : new KsealError('ERR_BACKEND', `cannot run gpg (${this.bin}): ${e.message}`),
            )
          })
          child.on('close', (code) => {
            const status: StatusLine[] = []
            const diagnostics: string[] = []
            for (const line of err.split(/\r?\n/)) {
              const m = /^\[GNUPG:\] (\S+)(?: (.*))?$/.exec(line)
              if (m) status.push({keyword: m[1], args: (m[2] ?? '').split(' ').filter(Boolean)})
              else if (line.trim()) diagnostics.push(line.trim())
            }
            resolve({code, stdout: Buffer.concat(out), status, diagnostics, overflow})
          })
          child.stdin.on('error', () => undefined) // gpg may exit before reading all of its input
          child.stdin.end(input)
        }),
    )
  }

  /** Keys in the public (or secret) keyring, optionally only the one with this fingerprint. */
  async listKeys(secret: boolean, fingerprint?: string): Promise<GpgKey[]> {
    const args = [secret ? '--list-secret-keys' : '--list-keys', '--with-colons', '--with-fingerprint', '--with-subkey-fingerprint']
    const r = await this.run(fingerprint ? [...args, '--', fingerprint] : args, '', 16 * 1024 * 1024)
    if (r.code !== 0) {
      if (fingerprint) return [] // gpg exits 2 for a key it does not have
      throw new KsealError('ERR_BACKEND', `gpg could not list its keys: ${r.diagnostics.at(-1) ?? `exit code ${r.code}`}`)
    }
    return parseColons(r.stdout.toString('utf8'))
  }

  /**
   * Fingerprints (primary and subkey) whose secret part gpg holds for decryption: keys with an
   * encryption-capable (sub)key that is not a stub (`#`, as after `--export-secret-subkeys`).
   * Read once per run.
   */
  secretKeys(): Promise<Set<string>> {
    this.secrets ??= this.listKeys(true).then((keys) => {
      const held = new Set<string>()
      for (const k of keys) {
        for (const sub of k.keys) {
          if (sub.secret && /e/.test(sub.capabilities)) {
            held.add(sub.fingerprint)
            held.add(k.fingerprint)
          }
        }
      }
      return held
    })
    return this.secrets
  }

  /** Encrypts to the key with this fingerprint (its best encryption subkey), armored or binary. */
  async encrypt(fingerprint: string, plaintext: Uint8Array, armor: boolean): Promise<Buffer> {
    const args = [
      '--trust-model',
      'always',
      '--no-encrypt-to',
      '--compress-algo',
      'none',
      ...(armor ? ['--armor'] : []),
      '--encrypt',
      '--recipient',
      fingerprint,
    ]
    const r = await this.run(args, Buffer.from(plaintext), MAX_MESSAGE_BYTES)
    const invalid = r.status.find((s) => s.keyword === 'INV_RECP')
    if (invalid)
      throw new KsealError(
        'ERR_USAGE',
        `cannot encrypt for pgp:${fingerprint}: ${INVALID_RECIPIENT[invalid.args[0]] ?? 'gpg refused the key'}`,
      )
    if (r.code !== 0 || !r.status.some((s) => s.keyword === 'END_ENCRYPTION') || r.stdout.length === 0) {
      throw new KsealError('ERR_BACKEND', `gpg could not encrypt for pgp:${fingerprint}: ${r.diagnostics.at(-1) ?? `exit code ${r.code}`}`)
    }
    return r.stdout
  }

  /**
   * Decrypts an OpenPGP message (binary or armored). Success needs gpg's own word for it: exit 0,
   * DECRYPTION_OKAY and the key that decrypted (DECRYPTION_KEY) — a literal packet that was never
   * encrypted, or a message whose integrity check fails after gpg already streamed its output, is
   * not a success. With `verify`, a valid signature (VALIDSIG) is required too (kubesec signs its
   * wrapped keys); otherwise signatures are not checked (`--skip-verify`).
   */
  async decrypt(message: Buffer | string, opts: {verify?: boolean; maxOutput: number}): Promise<DecryptOutcome> {
    if (Buffer.byteLength(message) > MAX_MESSAGE_BYTES)
      return {ok: false, reason: 'too-large', detail: `larger than ${MAX_MESSAGE_BYTES} bytes`}
    // gpg reads a damaged armor leniently and reports it only in its (localised) diagnostics: kseal
    // checks the armor and its CRC itself, and gives gpg the binary message.
    const binary = typeof message === 'string' ? dearmor(message) : message
    if (!binary) return {ok: false, reason: 'altered', detail: 'not a valid ASCII-armored OpenPGP message'}
    const args = ['--no-auto-key-retrieve', ...(opts.verify ? [] : ['--skip-verify']), '--max-output', String(opts.maxOutput), '--decrypt']
    const r = await this.run(args, binary, opts.maxOutput)
    if (r.overflow) return {ok: false, reason: 'too-large', detail: `its plaintext is larger than ${opts.maxOutput} bytes`}
    const has = (k: string) => r.status.some((s) => s.keyword === k)
    const key = r.status.find((s) => s.keyword === 'DECRYPTION_KEY')
    if (r.code === 0 && has('DECRYPTION_OKAY') && key && !has('BADMDC') && !has('DECRYPTION_FAILED')) {
      const signers = r.status.filter((s) => s.keyword === 'VALIDSIG').map((s) => s.args[9] ?? s.args[0])
      if (opts.verify && signers.length === 0) return {ok: false, reason: 'not-signed', detail: 'it carries no valid signature'}
      return {ok: true, plaintext: r.stdout, subkey: key.args[0], primary: key.args[1] ?? key.args[0], signers}
    }
    const pk = r.status.find((s) => s.keyword === 'ERROR' && s.args[0] === 'pkdecrypt_failed')
    const code = pk ? Number(pk.args[1]) & 0xffff : 0
    if (BAD_PASSPHRASE.has(code) || has('BAD_PASSPHRASE')) return {ok: false, reason: 'bad-passphrase', detail: 'bad passphrase'}
    if (PASSPHRASE_UNAVAILABLE.has(code) || has('MISSING_PASSPHRASE')) {
      return {
        ok: false,
        reason: 'no-passphrase',
        detail: 'gpg-agent could not ask for the passphrase (no pinentry, or it was cancelled; set GPG_TTY=$(tty) for a terminal prompt)',
      }
    }
    if (AGENT_UNAVAILABLE.has(code))
      return {ok: false, reason: 'failed', detail: 'gpg could not use gpg-agent or the key (is gpg-agent running and the key usable?)'}
    if (code === GPG_ERR_NO_SECKEY || (has('NO_SECKEY') && !pk && !key))
      return {ok: false, reason: 'no-secret-key', detail: 'no secret key for it in the gpg keyring'}
    if (r.code === 0 && !has('BEGIN_DECRYPTION')) return {ok: false, reason: 'not-encrypted', detail: 'not an encrypted OpenPGP message'}
    if (pk || key || ['BADMDC', 'DECRYPTION_FAILED', 'NODATA'].some(has))
      return {ok: false, reason: 'altered', detail: 'not a valid encrypted OpenPGP message'}
    return {ok: false, reason: 'failed', detail: r.diagnostics.at(-1) ?? `gpg exit code ${r.code}`}
  }
}

/** gpg-error codes in `ERROR pkdecrypt_failed <code>` (the low 16 bits; gpg-error.h). */
const GPG_ERR_NO_SECKEY = 17
/** Bad passphrase, bad PIN. */
const BAD_PASSPHRASE = new Set([11, 87])
/** Timeout, no pinentry, pinentry error, not confirmed, cancelled, no passphrase or PIN given. */
const PASSPHRASE_UNAVAILABLE = new Set([62, 85, 86, 99, 114, 177, 178, 198])
/** Unusable secret key, no agent, agent error, invalid engine, cannot connect. */
const AGENT_UNAVAILABLE = new Set([54, 77, 78, 150, 259])

/**
 * The packets of an ASCII-armored `PGP MESSAGE` (RFC 4880 §6): headers, base64 body, and the
 * CRC-24 checksum line, which must match when present. Null when anything is off.
 */
export function dearmor(text: string): Buffer | null {
  const m =
    /^\s*-----BEGIN PGP MESSAGE-----\r?\n((?:[^\r\n]+\r?\n)*?)\r?\n([A-Za-z0-9+/=\r\n]*?)(?:=([A-Za-z0-9+/]{4})\r?\n)?-----END PGP MESSAGE-----\s*$/.exec(
      text,
    )
  if (!m || !/^(?:[^:\r\n]+: [^\r\n]*\r?\n)*$/.test(m[1])) return null
  const body = m[2].replace(/\s+/g, '')
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(body) || body === '') return null
  const bytes = Buffer.from(body, 'base64')
  if (m[3] !== undefined && Buffer.from(m[3], 'base64').readUIntBE(0, 3) !== crc24(bytes)) return null
  return bytes
}

/** OpenPGP's CRC-24 (RFC 4880 §6.1). */
function crc24(data: Buffer): number {
  let crc = 0xb704ce
  for (const b of data) {
    crc ^= b << 16
    for (let i = 0; i < 8; i++) {
      crc <<= 1
      if (crc & 0x1000000) crc ^= 0x1864cfb
    }
  }
  return crc & 0xffffff
}

const INVALID_RECIPIENT: Record<string, string> = {
  '1': 'no such public key in your gpg keyring (import it: gpg --import KEY.asc)',
  '2': 'the fingerprint matches more than one key',
  '3': 'the key cannot encrypt (no encryption subkey)',
  '4': 'the key is revoked',
  '5': 'the key has expired',
  '10': 'the key is not trusted',
  '13': 'the key is disabled',
}

/** Parses `--with-colons` key listings (pub/sec, sub/ssb, each followed by its fpr record). */
export function parseColons(text: string): GpgKey[] {
  const keys: GpgKey[] = []
  let pending: {capabilities: string; validity: string; secret: boolean; primary: boolean} | null = null
  for (const line of text.split('\n')) {
    const f = line.split(':')
    switch (f[0]) {
      case 'pub':
      case 'sec':
      case 'sub':
      case 'ssb':
        // Field 15 of a secret (sub)key: `#` when only a stub is present (the secret is elsewhere).
        pending = {
          capabilities: f[11] ?? '',
          validity: f[1] ?? '',
          secret: (f[0] === 'sec' || f[0] === 'ssb') && f[14] !== '#',
          primary: f[0] === 'pub' || f[0] === 'sec',
        }
        break
      case 'fpr':
        if (!pending) break
        if (pending.primary) keys.push({fingerprint: f[9], keys: []})
        keys.at(-1)?.keys.push({fingerprint: f[9], capabilities: pending.capabilities, validity: pending.validity, secret: pending.secret})
        pending = null
        break
    }
  }
  return keys
}

export class PgpRecipient implements Recipient {
  readonly backend = NAME
  readonly uri: string
  constructor(
    private readonly gpg: Gpg,
    readonly kid: string,
  ) {
    this.uri = `${NAME}:${kid}`
  }

  async wrap(dataKey: Uint8Array, binding: KeyBinding): Promise<RecipientEntry> {
    const message = await this.gpg.encrypt(this.kid, Buffer.concat([dataKey, binding.label]), false)
    return {backend: NAME, kid: this.kid, wrapped: message.toString('base64')}
  }
}

/** The gpg keyring as an identity: any `pgp` entry (kid `*`), or the one fingerprint given with `--key`. */
export class PgpIdentity implements Identity {
  readonly backend = NAME
  readonly kid: string
  /** The public half, for one fingerprint (rotation re-wraps with it); the whole keyring has none. */
  readonly recipient?: () => Recipient

  constructor(
    private readonly gpg: Gpg,
    readonly source: string,
    private readonly only?: string,
  ) {
    this.kid = only ?? '*'
    if (only) this.recipient = () => new PgpRecipient(gpg, only)
  }

  async unwrap(entry: RecipientEntry, binding: KeyBinding): Promise<Uint8Array | null> {
    if (entry.backend !== NAME) return null
    if (this.only !== undefined && this.only !== entry.kid) return null
    if (!FPR_RE.test(entry.kid))
      throw new KsealError('ERR_INTEGRITY', 'malformed kseal envelope: a pgp recipient has no valid key fingerprint')
    if (!(await this.gpg.secretKeys()).has(entry.kid)) return null
    const message = Buffer.from(entry.wrapped, 'base64')
    if (message.length === 0 || message.toString('base64') !== entry.wrapped.replace(/\s+/g, '')) {
      throw new KsealError('ERR_INTEGRITY', `malformed kseal envelope: the pgp recipient ${entry.kid} has no valid wrapped key`)
    }
    const label = binding.label
    const r = await this.gpg.decrypt(message, {maxOutput: DATA_KEY_BYTES + label.length + 256})
    if (!r.ok) throw decryptError(r, `pgp:${entry.kid}`)
    if (r.primary !== entry.kid && r.subkey !== entry.kid) {
      throw new KsealError(
        'ERR_DECRYPT',
        `cannot decrypt the data key with pgp:${entry.kid}: it was encrypted to another key (the recipient entry was altered)`,
      )
    }
    const got = r.plaintext
    if (got.length !== DATA_KEY_BYTES + label.length || !got.subarray(DATA_KEY_BYTES).equals(label)) {
      throw new KsealError(
        'ERR_DECRYPT',
        `cannot decrypt the data key with pgp:${entry.kid}: the Secret was moved or renamed, or the recipient entry was altered`,
      )
    }
    return got.subarray(0, DATA_KEY_BYTES)
  }
}

/** One line for a failed decryption with `key` (e.g. `pgp:FPR`), with the exit code its cause deserves. */
export function decryptError(r: Extract<DecryptOutcome, {ok: false}>, key: string): KsealError {
  switch (r.reason) {
    case 'no-secret-key':
      return new KsealError('ERR_NO_KEY', `cannot decrypt the data key with ${key}: ${r.detail}`)
    case 'no-passphrase':
    case 'failed':
      return new KsealError('ERR_BACKEND', `cannot decrypt the data key with ${key}: ${r.detail}`)
    case 'bad-passphrase':
      return new KsealError('ERR_DECRYPT', `cannot decrypt the data key with ${key}: bad passphrase`)
    default:
      return new KsealError('ERR_DECRYPT', `cannot decrypt the data key with ${key}: ${r.detail} (the recipient entry was altered)`)
  }
}

export class PgpBackend implements Backend {
  readonly name = NAME
  private gpgFor?: {ctx: BackendContext; gpg: Gpg}

  /** One gpg runner per run (its secret-key list is read once). */
  gpg(ctx: BackendContext): Gpg {
    if (this.gpgFor?.ctx !== ctx) this.gpgFor = {ctx, gpg: new Gpg(ctx)}
    return this.gpgFor.gpg
  }

  /** `pgp:<fingerprint>`: the public key must be in the user's keyring. */
  async recipient(rest: string, ctx: BackendContext): Promise<Recipient> {
    const fpr = parseFingerprint(rest)
    const gpg = this.gpg(ctx)
    const [key] = await gpg.listKeys(false, fpr)
    if (!key) throw new KsealError('ERR_USAGE', `pgp:${fpr}: no such public key in your gpg keyring (import it: gpg --import KEY.asc)`)
    if (key.fingerprint !== fpr)
      throw new KsealError('ERR_USAGE', `pgp:${fpr}: that is a subkey; use the key's primary fingerprint, pgp:${key.fingerprint}`)
    return new PgpRecipient(gpg, fpr)
  }

  /** `--key pgp:<fingerprint>`: decrypt with the gpg keyring, for entries of that key only. */
  async identities(rest: string, ctx: BackendContext): Promise<Identity[]> {
    const fpr = parseFingerprint(rest)
    return [new PgpIdentity(this.gpg(ctx), `pgp:${fpr}`, fpr)]
  }

  /** The user's gpg keyring, offered for pgp entries when no key file opens a Secret. */
  async ambient(ctx: BackendContext): Promise<Identity[]> {
    return [new PgpIdentity(this.gpg(ctx), `the gpg keyring (${ctx.env.GNUPGHOME || '~/.gnupg'})`)]
  }
}

export const backend = (): Backend => new PgpBackend()
