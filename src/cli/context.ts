/**
 * What every kseal command shares, without oclif: the backend context built from the real
 * environment (the only place globals are read), and the error policy — one line per problem on
 * stderr, the exit code from the one table in core/errors.ts, no stack trace unless asked for. The
 * oclif commands (base.ts) and the fast path (fast.ts) both use it.
 */
import {Backends} from '../../keys/index.js'
import type {BackendContext} from '../../keys/types.js'
import {EXIT, isKsealError, type KsealError, scrubUrls, worstExit} from '../core/errors.js'
import {type Expanded, expandPaths, skippedNote} from '../core/files.js'
import {Keyring} from '../keyring/keyring.js'
import type {SopsMasterKeys} from '../formats/sops/masterkeys.js'

export class CliContext {
  private backendsInstance?: Backends
  private sopsKeysInstance?: Promise<SopsMasterKeys>
  private readonly debugMode: boolean

  constructor(argv: string[]) {
    this.debugMode = Boolean(process.env.DEBUG) || argv.includes('--debug')
  }

  /** Set before the first keyring() when the run has several inputs (see BackendContext.bulk). */
  bulk = false

  context(): BackendContext {
    return {env: process.env, cwd: process.cwd(), now: () => new Date(), bulk: this.bulk}
  }

  backends(): Backends {
    this.backendsInstance ??= new Backends(this.context())
    return this.backendsInstance
  }

  keyring(keys: string[] = []): Keyring {
    return new Keyring(this.backends(), {keys, env: process.env})
  }

  /**
   * The keys for SOPS and kubesec files (age from the keyring's sources and sops's places, gpg, AWS
   * KMS), made on first use: plain kseal runs never load that code. Closed with the context.
   */
  sopsKeys(keyring: Keyring): () => Promise<SopsMasterKeys> {
    return () =>
      (this.sopsKeysInstance ??= import('../formats/sops/masterkeys.js').then((m) => new m.SopsMasterKeys(this.backends(), {keyring})))
  }

  /** Reports every error of a batch (one line each) and sets the most severe exit code. */
  report(errors: KsealError[]): void {
    for (const e of errors) this.line(e)
    if (errors.length) process.exitCode = worstExit(errors.map((e) => e.exitCode))
  }

  private line(e: KsealError): void {
    process.stderr.write(`kseal: ${e.line}\n`)
    if (this.debugMode && e.stack) process.stderr.write(e.stack + '\n')
  }

  /** Expands PATH arguments; symbolic links skipped in directory walks get a one-line note. */
  async expand(paths: string[], quiet: boolean): Promise<Expanded> {
    const e = await expandPaths(paths)
    const note = skippedNote(e.skipped ?? [])
    if (note) this.note(note, quiet)
    return e
  }

  note(msg: string, quiet: boolean): void {
    if (!quiet) process.stderr.write(`kseal: ${msg}\n`)
  }

  /** An error a command's run threw: a KsealError is its one line; anything else an unexpected error. */
  fail(err: Error): void {
    if (isKsealError(err)) {
      this.line(err)
      process.exitCode = err.exitCode
      return
    }
    process.stderr.write(`kseal: unexpected error: ${scrubUrls(err.message)}\n`)
    if (this.debugMode && err.stack) process.stderr.write(err.stack + '\n')
    process.exitCode = EXIT.RUNTIME
  }

  async close(): Promise<void> {
    await this.sopsKeysInstance?.then((k) => k.close()).catch(() => undefined)
    await this.backendsInstance?.close()
  }
}
