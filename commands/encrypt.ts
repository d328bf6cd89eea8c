import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runBatch} from '../src/batch.js'
import {expandPaths} from '../src/files.js'
import {encryptText} from '../src/transform.js'
import {SCOPES, type Scope} from '../keys/types.js'

export default class Encrypt extends KsealCommand {
  static override summary = 'Encrypt the data and stringData values of Secret manifests.'
  static override description = `Reads manifests from files, directories (recursively: *.yaml, *.yml, *.json) or stdin and
encrypts the values of every v1 Secret, also inside a List. Names, namespaces, labels, key names,
comments and layout stay as they were; other documents pass through unchanged. Values that are
already encrypted keep their ciphertext, so running encrypt again changes nothing.`
  static override examples = [
    {description: 'Encrypt a file in place for a team certificate', command: '<%= config.bin %> <%= command.id %> -i -r rsa:team.crt secret.yaml'},
    {description: 'Encrypt from stdin to stdout', command: 'kubectl create secret generic db --from-literal=password=s3cr3t --dry-run=client -o yaml | <%= config.bin %> <%= command.id %> -r rsa:team.crt > db.secret.yaml'},
    {description: 'Encrypt every manifest under a directory, bound to namespace only', command: '<%= config.bin %> <%= command.id %> -i --scope namespace -r rsa:team.crt k8s/'},
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    'in-place': Flags.boolean({char: 'i', description: 'Rewrite the files (atomically) instead of writing to stdout.'}),
    recipient: Flags.string({char: 'r', multiple: true, multipleNonGreedy: true, description: 'Who can decrypt: a key URI such as rsa:PATH (certificate or public key PEM). Repeatable.'}),
    scope: Flags.string({options: [...SCOPES], default: 'strict', description: 'What the values are bound to: strict (namespace and name), namespace, or cluster.'}),
    key: Flags.string({char: 'k', multiple: true, multipleNonGreedy: true, description: 'Private key used only to add new values to a Secret that is already encrypted.'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Encrypt)
    const files = await expandPaths(argv as string[])
    const backends = this.backends()
    const recipients = await Promise.all((flags.recipient ?? []).map((r) => backends.recipient(r)))
    const opts = {recipients, scope: flags.scope as Scope, keyring: this.keyring(flags.key)}
    const result = await runBatch(files, (text, file) => encryptText(text, file, opts), {inPlace: flags['in-place'], quiet: flags.quiet, verb: 'encrypting'})
    if (result.stdout !== null) process.stdout.write(result.stdout)
    this.report(result.errors)
  }
}
