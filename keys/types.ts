/**
 * The key-backend contract. A backend wraps a Secret's data key for one recipient and unwraps it
 * again; it never sees YAML, values or the envelope's concepts (scopes, formats): what a wrapped key
 * is bound to reaches it as opaque bytes and an opaque string map. Modelled on age's
 * Recipient/Identity and sops' MasterKey.
 */

/**
 * What a wrapped data key is bound to, computed by the envelope (src/envelope/binding.ts) from the
 * Secret's place. A backend binds the wrapped key to one of the two forms and interprets neither.
 */
export interface KeyBinding {
  /** Bytes the wrapped key is bound to: the RSA-OAEP label, appended to the age and PGP plaintext. */
  readonly label: Buffer
  /** The same binding as a string map, for services that take one (AWS KMS's EncryptionContext). */
  readonly context: Readonly<Record<string, string>>
}

/** One recipient's copy of the data key, as stored in the envelope. All fields are strings. */
export interface RecipientEntry {
  /** Backend name (`rsa`, `awskms`, `age`, ...). */
  backend: string
  /** The key id: selects the key directly, without trying every key. */
  kid: string
  /** The wrapped data key, base64. */
  wrapped: string
}

/** Something a data key can be wrapped for: a public key, a KMS key. */
export interface Recipient {
  readonly backend: string
  readonly kid: string
  /** A display form of the recipient (its URI), never secret. */
  readonly uri: string
  wrap(dataKey: Uint8Array, binding: KeyBinding): Promise<RecipientEntry>
}

/** Something that can unwrap a data key: a private key, KMS credentials. */
export interface Identity {
  readonly backend: string
  /** The key id this identity opens, or `*` when it can try any entry of its backend (KMS). */
  readonly kid: string
  /** Where it came from (a file path, a key ARN), for messages. */
  readonly source: string
  /** The data key, or null when the entry is not this identity's. Throws on a malformed entry or a failed service. */
  unwrap(entry: RecipientEntry, binding: KeyBinding): Promise<Uint8Array | null>
  /** The public half, when this identity can produce it: lets rotation re-wrap for a key it holds. */
  recipient?(): Recipient
}

/** What backends receive from the caller instead of reading globals. */
export interface BackendContext {
  /** Environment variables (defaults to process.env at the CLI edge). */
  env: Record<string, string | undefined>
  /** Current working directory used to resolve relative paths. */
  cwd: string
  /** Current time; injected for tests. */
  now: () => Date
  /**
   * The run will unwrap many data keys (several files): a backend may get ready for that as soon as
   * it loads a key, instead of on the first burst (the RSA pool starts its threads then).
   */
  bulk?: boolean
}

export interface Backend {
  /** URI scheme and backend name in entries (`rsa` for `rsa:PATH`). */
  readonly name: string
  /** Parses the part after `scheme:` into a recipient. */
  recipient(rest: string, ctx: BackendContext): Promise<Recipient>
  /** Loads identities from an explicit `--key scheme:rest`. */
  identities(rest: string, ctx: BackendContext): Promise<Identity[]>
  /**
   * Identities that need no key file, such as cloud credentials from the environment (KMS). The
   * Keyring offers them only for this backend's entries, and only after every key source.
   */
  ambient?(ctx: BackendContext): Promise<Identity[]>
  /** Called once when a run ends: release pools, sockets. */
  close?(): Promise<void>
}
