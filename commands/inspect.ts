import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runBatch} from '../src/ops/batch.js'
import {inspectText, type SecretInfo, v1Notes} from '../src/ops/inspect.js'

export default class Inspect extends KsealCommand {
  static override summary = 'Show what encrypted Secrets hold: scope, format, where they were encrypted, recipients. Needs no key.'
  static override description = `Reads the envelope of every encrypted Secret: its scope, format version, the identity it was
encrypted as (format 2: namespace and name, or "any namespace" for a namespace left open because the
Secret had none), the number of values and its recipients. A format 1 Secret is noted on stderr:
its recipients are not authenticated; kseal rotate upgrades it.

SOPS documents (YAML and JSON, as sops writes them) and kubesec Secrets are listed too, with the
format (sops and the release that wrote it, or kubesec and its version) and their recipients, read
without a key. Their formats authenticate less than kseal's: --json says what each one's MAC
covers ("authenticated").`
  static override examples = [
    '<%= config.bin %> <%= command.id %> secret.yaml',
    '<%= config.bin %> <%= command.id %> --json k8s/ | jq ".[].recipients"',
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {json: Flags.boolean({description: 'Print a JSON array instead of a table.'})}

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Inspect)
    const files = await this.expand(argv as string[], flags.quiet)
    const infos: SecretInfo[] = []
    const result = await runBatch(
      files,
      async (text, file) => {
        infos.push(...inspectText(text, file))
        return text
      },
      {inPlace: false, quiet: flags.quiet, verb: 'reading', concurrency: 1},
    )
    // As every command: each problem one line on stderr, and then nothing on stdout.
    if (result.errors.length) {
      this.report(result.errors)
      return
    }
    if (flags.json) {
      process.stdout.write(JSON.stringify(infos, null, 2) + '\n')
    } else if (infos.length) {
      const rows = infos.map((i) => [
        `${i.file}#${i.document}`,
        i.namespace ? `${i.namespace}/${i.name}` : i.name,
        i.scope,
        i.format === 'kseal' ? `v${i.version}` : i.format === 'sops' ? `sops ${i.version}` : `kubesec v${i.version}`,
        i.encryptedAs?.shown ?? '-',
        String(i.values) + (i.plaintext ? ` (+${i.plaintext} plaintext)` : ''),
        i.recipients.map((r) => `${r.backend}:${r.kid}`).join(', '),
      ])
      process.stdout.write(table([['FILE#DOC', 'SECRET', 'SCOPE', 'FORMAT', 'ENCRYPTED AS', 'VALUES', 'RECIPIENTS'], ...rows]))
    } else {
      this.note('no encrypted Secrets found', flags.quiet)
    }
    for (const n of v1Notes(infos)) this.note(n, flags.quiet)
    if (infos.some((i) => i.format !== 'kseal') && !flags.json) this.note(FOREIGN_NOTE, flags.quiet)
  }
}

const FOREIGN_NOTE =
  "SOPS files authenticate every value but not their recipients, nor the Secret's place (a value moved to another Secret still decrypts); kubesec files not the Secret's metadata. --json says what each file's MAC covers (authenticated)."

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n') + '\n'
}
