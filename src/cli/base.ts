/**
 * The oclif side of every kseal command: `--debug` and `--quiet`, and oclif's own parse errors as
 * usage errors. The rest — the backend context built from the real environment and the error policy
 * (one line per problem on stderr, the exit code from the one table in core/errors.ts, no stack
 * trace unless asked for) — is the CliContext (context.ts), which the fast path (fast.ts) shares.
 */
import {Command} from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'
import type {Backends} from '../../keys/index.js'
import {EXIT, isKsealError, type KsealError, scrubUrls} from '../core/errors.js'
import type {Expanded} from '../core/files.js'
import type {Keyring} from '../keyring/keyring.js'
import {CliContext} from './context.js'
import type {SopsMasterKeys} from '../formats/sops/masterkeys.js'

export abstract class KsealCommand extends Command {
  static override baseFlags = {
    debug: Flags.boolean({description: 'Show stack traces for unexpected errors (also DEBUG=kseal).', helpGroup: 'GLOBAL'}),
    quiet: Flags.boolean({char: 'q', description: 'No progress indicator or notes on stderr.', helpGroup: 'GLOBAL'}),
  }

  protected readonly cli = new CliContext(this.argv)

  protected backends(): Backends {
    return this.cli.backends()
  }

  protected keyring(keys: string[] = []): Keyring {
    return this.cli.keyring(keys)
  }

  /** The keys for SOPS and kubesec files, made on first use (CliContext.sopsKeys). */
  protected sopsKeys(keyring: Keyring): () => Promise<SopsMasterKeys> {
    return this.cli.sopsKeys(keyring)
  }

  /** Reports every error of a batch (one line each) and sets the most severe exit code. */
  protected report(errors: KsealError[]): void {
    this.cli.report(errors)
  }

  /** Expands PATH arguments; symbolic links skipped in directory walks get a one-line note. */
  protected expand(paths: string[], quiet: boolean): Promise<Expanded> {
    return this.cli.expand(paths, quiet)
  }

  protected note(msg: string, quiet: boolean): void {
    this.cli.note(msg, quiet)
  }

  override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    // oclif's own parse errors (unknown flag, missing argument) are usage errors.
    if (
      !isKsealError(err) &&
      (err.oclif?.exit !== undefined || /Nonexistent flag|Unexpected argument|Expected --|Missing required|Parsing --/.test(err.message))
    ) {
      process.stderr.write(`kseal: ${scrubUrls(err.message.split('\n')[0])}\nSee: kseal ${this.id ?? ''} --help\n`)
      process.exitCode = err.oclif?.exit === 0 ? 0 : EXIT.USAGE
      return
    }
    this.cli.fail(err)
  }

  override async finally(err: Error | undefined): Promise<unknown> {
    await this.cli.close()
    return super.finally(err)
  }
}

export {Flags}
