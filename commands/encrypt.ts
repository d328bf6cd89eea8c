import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {KsealError} from '../src/core/errors.js'
import {runBatch} from '../src/ops/batch.js'
import {CreationRules} from '../src/config/config.js'
import {encryptText, encryptTextToSops, encryptTextWithRules} from '../src/ops/encrypt.js'
import {SECRET_FORMATS, type SecretFormat} from '../src/config/config.js'
import {SCOPES, type Scope} from '../src/envelope/binding.js'

export default class Encrypt extends KsealCommand {
  static override summary = 'Encrypt the data and stringData values of Secret manifests.'
  static override description = `Reads manifests from files, directories (recursively: *.yaml, *.yml, *.json) or stdin and
encrypts the values of every v1 Secret, also inside a List. Names, namespaces, labels, key names,
comments and layout stay as they were; other documents pass through unchanged, among them a kind
named Secret in another API group (a CRD's): only core v1 Secrets are kseal's. Values that are
already encrypted keep their ciphertext, so running encrypt again changes nothing.

Recipients are key URIs: rsa:PATH (certificate or public key PEM), awskms:ARN (a KMS key or alias ARN), age:age1... (an age recipient) and pgp:FINGERPRINT (an OpenPGP key in your gpg keyring). Repeat -r to encrypt for several; any one of them decrypts.

Without -r, each Secret is encrypted for the first matching rule of the nearest .kseal.yaml, looked for in the file's directory and its parents (for stdin: the working directory and its parents).

Plaintext values added to an encrypted Secret join its data key: that needs its key (-k), and the
Secret is opened and its MAC checked first, so a tampered file is refused (exit 3) rather than
re-sealed. encrypt only adds values; change or remove them with kseal edit. A Secret still in
format 1 is upgraded to format 2 on the way, wrapped only for its recipients that are named (-r,
.kseal.yaml) or held; an entry nobody vouches for stops it, naming the entry. A Secret with no
namespace leaves its namespace open (an overlay may set one); its name stays bound under strict.

With --format sops (or format: sops in the .kseal.yaml rule) Secrets are written as SOPS files
that sops, Flux's kustomize-controller, KSOPS and helm-secrets decrypt as their own: each Secret
its own data key, encrypted_regex ^(data|stringData)$, age, pgp and awskms recipients, sops's MAC
and lastmodified; comments and layout kept. The SOPS format protects less than kseal's: values are
not bound to their Secret, and the recipient entries are not authenticated (docs/formats/sops.md).
kseal decrypt, edit, rotate and check work on these files.`
  static override examples = [
    {
      description: 'Encrypt a file in place for a team certificate',
      command: '<%= config.bin %> <%= command.id %> -i -r rsa:team.crt secret.yaml',
    },
    {
      description: 'Encrypt from stdin to stdout',
      command:
        'kubectl create secret generic db --from-literal=password=s3cr3t --dry-run=client -o yaml | <%= config.bin %> <%= command.id %> -r rsa:team.crt > db.secret.yaml',
    },
    {
      description: 'Encrypt every manifest under a directory, bound to namespace only',
      command: '<%= config.bin %> <%= command.id %> -i --scope namespace -r rsa:team.crt k8s/',
    },
    {
      description: 'Encrypt for the team key, a CI KMS key and a break-glass age key',
      command:
        '<%= config.bin %> <%= command.id %> -i -r rsa:team.crt -r awskms:arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci -r age:age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p secret.yaml',
    },
    {description: 'Encrypt with the recipients and scope from .kseal.yaml rules', command: '<%= config.bin %> <%= command.id %> -i k8s/'},
    {
      description: "Write SOPS for Flux's kustomize-controller (decryption.provider: sops)",
      command:
        '<%= config.bin %> <%= command.id %> -i --format sops -r age:age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p secret.yaml',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    'in-place': Flags.boolean({char: 'i', description: 'Rewrite the files (atomically) instead of writing to stdout.'}),
    recipient: Flags.string({
      char: 'r',
      multiple: true,
      multipleNonGreedy: true,
      description:
        'Who can decrypt: rsa:PATH (certificate or public key PEM), awskms:ARN, age:age1... or pgp:FINGERPRINT. Repeatable; without it, .kseal.yaml decides.',
    }),
    scope: Flags.string({
      options: [...SCOPES],
      description:
        "What the values are bound to: strict (namespace and name), namespace, or cluster. Default: the .kseal.yaml rule's scope, else strict.",
    }),
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description: 'Private key used only to add new values to a Secret that is already encrypted.',
    }),
    format: Flags.string({
      options: [...SECRET_FORMATS],
      description:
        "kseal (its own format) or sops (SOPS's, for Flux, KSOPS and helm-secrets: encrypted_regex ^(data|stringData)$; age, pgp and awskms recipients). Default: the .kseal.yaml rule's format, else kseal.",
    }),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Encrypt)
    const files = await this.expand(argv as string[], flags.quiet)
    const backends = this.backends()
    const keyring = this.keyring(flags.key)
    const scope = flags.scope as Scope | undefined
    let transform: (text: string, file: string | undefined) => Promise<string>
    const format = flags.format as SecretFormat | undefined
    const sops = this.sopsKeys(keyring)
    if (format === 'sops' && scope)
      throw new KsealError('ERR_USAGE', "--scope applies to kseal's format; SOPS binds no value to its Secret")
    if (flags.recipient?.length) {
      const recipients = await Promise.all(flags.recipient.map((r) => backends.recipient(r)))
      const opts = {recipients, scope: scope ?? 'strict', keyring}
      transform =
        format === 'sops' ? (text, file) => encryptTextToSops(text, file, recipients, sops) : (text, file) => encryptText(text, file, opts)
    } else {
      const rules = new CreationRules(backends)
      await rules.preload(files.files.map((f) => (f === '-' ? undefined : f)))
      transform = (text, file) => encryptTextWithRules(text, file, rules, {scope, keyring}, {keys: sops, format})
    }
    const result = await runBatch(files, transform, {inPlace: flags['in-place'], quiet: flags.quiet, verb: 'encrypting'})
    if (result.stdout !== null) process.stdout.write(result.stdout)
    this.report(result.errors)
  }
}
