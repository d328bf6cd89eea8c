/**
 * What every kseal command shares: `--debug` and `--quiet`, the backend context built from the real
 * environment (the only place globals are read), and the error policy — one line per problem on
 * stderr, the exit code from the one table in errors.ts, no stack trace unless asked for.
 */
import {Command} from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'
import {Backends} from '../../keys/index.js'
import type {BackendContext} from '../../keys/types.js'
import {EXIT, isKsealError, type KsealError, scrubUrls, worstExit} from '../core/errors.js'
import {Keyring} from '../keyring/keyring.js'
import type {SopsMasterKeys} from '../formats/sops/masterkeys.js'
import {type Expanded, expandPaths, skippedNote} from '../core/files.js'

export abstract class KsealCommand extends Command {
  static override baseFlags = {
    debug: Flags.boolean({description: 'Show stack traces for unexpected errors (also DEBUG=kseal).', helpGroup: 'GLOBAL'}),
    quiet: Flags.boolean({char: 'q', description: 'No progress indicator or notes on stderr.', helpGroup: 'GLOBAL'}),
  }

  private backendsInstance?: Backends
  private sopsKeysInstance?: Promise<SopsMasterKeys>
  protected debugMode = Boolean(process.env.DEBUG)

  protected context(): BackendContext {
    return {env: process.env, cwd: process.cwd(), now: () => new Date()}
  }

  protected backends(): Backends {
    this.backendsInstance ??= new Backends(this.context())
    return this.backendsInstance
  }

  protected keyring(keys: string[] = []): Keyring {
    return new Keyring(this.backends(), {keys, env: process.env})
  }

  /**
   * The keys for SOPS and kubesec files (age from the keyring's sources and sops's places, gpg, AWS
   * KMS), made on first use: plain kseal runs never load that code. Closed when the command ends.
   */
  protected sopsKeys(keyring: Keyring): () => Promise<SopsMasterKeys> {
    return () =>
      (this.sopsKeysInstance ??= import('../formats/sops/masterkeys.js').then((m) => new m.SopsMasterKeys(this.backends(), {keyring})))
  }

  /** Reports every error of a batch (one line each) and sets the most severe exit code. */
  protected report(errors: KsealError[]): void {
    for (const e of errors) this.line(e)
    if (errors.length) process.exitCode = worstExit(errors.map((e) => e.exitCode))
  }

  private line(e: KsealError): void {
    process.stderr.write(`kseal: ${e.line}\n`)
    if (this.debugMode && e.stack) process.stderr.write(e.stack + '\n')
  }

  /** Expands PATH arguments; symbolic links skipped in directory walks get a one-line note. */
  protected async expand(paths: string[], quiet: boolean): Promise<Expanded> {
    const e = await expandPaths(paths)
    const note = skippedNote(e.skipped ?? [])
    if (note) this.note(note, quiet)
    return e
  }

  protected note(msg: string, quiet: boolean): void {
    if (!quiet) process.stderr.write(`kseal: ${msg}\n`)
  }

  override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (isKsealError(err)) {
      this.line(err)
      process.exitCode = err.exitCode
      return
    }
    // oclif's own parse errors (unknown flag, missing argument) are usage errors.
    if (err.oclif?.exit !== undefined || /Nonexistent flag|Unexpected argument|Expected --|Missing required|Parsing --/.test(err.message)) {
      process.stderr.write(`kseal: ${scrubUrls(err.message.split('\n')[0])}\nSee: kseal ${this.id ?? ''} --help\n`)
      process.exitCode = err.oclif?.exit === 0 ? 0 : EXIT.USAGE
      return
    }
    process.stderr.write(`kseal: unexpected error: ${scrubUrls(err.message)}\n`)
    if (this.debugMode && err.stack) process.stderr.write(err.stack + '\n')
    process.exitCode = EXIT.RUNTIME
  }

  override async finally(err: Error | undefined): Promise<unknown> {
    await this.sopsKeysInstance?.then((k) => k.close()).catch(() => undefined)
    await this.backendsInstance?.close()
    return super.finally(err)
  }

  override async init(): Promise<void> {
    await super.init()
    if (this.argv.includes('--debug')) this.debugMode = true
  }
}

export {Flags}
