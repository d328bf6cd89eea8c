import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {resolveCertificate} from '../src/client/cert.js'
import {CreationRules} from '../src/config/config.js'
import {KsealError} from '../src/core/errors.js'
import {STDIN} from '../src/core/files.js'
import {SCOPES, type Scope} from '../src/envelope/binding.js'
import {runBatch} from '../src/ops/batch.js'
import {type Converted, type ImportOptions, importText} from '../src/ops/import.js'
import {loadUnsealKeyring} from '../src/ops/unseal.js'
import Seal, {certificateSource} from './seal.js'

export default class Import extends KsealCommand {
  static override summary = 'Convert SOPS, kubesec and Bitnami sealed-secrets files to kseal, in place.'
  static override description = `Switching in one command. Every SOPS-encrypted Secret (YAML or JSON, as sops writes it) and
every kubesec Secret becomes a kseal-encrypted Secret (format 2) for the recipients -r names, or
those of the file's .kseal.yaml rule: each value is replaced where it stood and the sops block or
kubesec footer by the kseal envelope; comments and layout stay. Their keys are found as kseal
decrypt finds them (KSEAL_KEYS, ~/.config/kseal/keys, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE,
~/.config/sops/age/keys.txt, your gpg keyring, AWS credentials), and their MACs are verified first.

Every Bitnami SealedSecret (bitnami.com/v1alpha1) is opened with the sealed-secrets controller's
private key (--key, as kseal unseal takes it) and becomes a kseal SealedSecret sealed to the kseal
controller's certificate (--cert or --controller-*, as kseal seal takes them) or, without those, an
encrypted Secret for -r / .kseal.yaml.

One line per converted Secret on stdout: FILE#DOC NAMESPACE/NAME: FROM → TO. Files are rewritten
atomically: a file that fails is left exactly as it was, every file is attempted, and the exit code
is encrypt's. --dry-run prints the same lines and writes nothing.

Refused, with one line each: SOPS documents that are not Secrets, SOPS encrypted comments (kseal
would have to keep them in plaintext), Shamir key groups, dotenv and INI files, values Kubernetes
reads differently from SOPS.`
  static override examples = [
    {description: 'See what would change', command: '<%= config.bin %> <%= command.id %> --dry-run -r age:age1... k8s/'},
    {description: 'Convert SOPS files for the recipients of .kseal.yaml', command: '<%= config.bin %> <%= command.id %> k8s/'},
    {
      description: "Move Bitnami SealedSecrets to the kseal controller's certificate",
      command:
        'kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > bitnami-keys.yaml && chmod 600 bitnami-keys.yaml && <%= config.bin %> <%= command.id %> --key bitnami-keys.yaml --cert kseal.crt sealed/',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories (converted in place).', ignoreStdin: true})}
  static override flags = {
    recipient: Flags.string({
      char: 'r',
      multiple: true,
      multipleNonGreedy: true,
      description:
        'Who can decrypt the converted Secrets: rsa:PATH, awskms:ARN, age:age1... or pgp:FINGERPRINT. Repeatable; without it, .kseal.yaml decides.',
    }),
    scope: Flags.string({
      options: [...SCOPES],
      description: "What the values are bound to: strict, namespace or cluster. Default: the .kseal.yaml rule's scope, else strict.",
    }),
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description:
        "The sealed-secrets controller's private key, for Bitnami SealedSecrets: a PEM file (or rsa:PATH), a directory of keys, or a Secret manifest with tls.key. Repeatable.",
    }),
    cert: Seal.flags.cert,
    'cert-sha256': Seal.flags['cert-sha256'],
    'controller-namespace': Seal.flags['controller-namespace'],
    'controller-name': Seal.flags['controller-name'],
    kubeconfig: Seal.flags.kubeconfig,
    context: Seal.flags.context,
    'dry-run': Flags.boolean({description: 'Print what would be converted; write nothing.'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Import)
    if ((argv as string[]).length === 0 || (argv as string[]).includes(STDIN))
      throw new KsealError('ERR_USAGE', 'kseal import converts files in place: name the files or directories')
    const files = await this.expand(argv as string[], flags.quiet)
    const backends = this.backends()
    const keyring = this.keyring()
    const scope = flags.scope as Scope | undefined
    let optionsFor: (file: string | undefined) => ImportOptions['optionsFor']
    if (flags.recipient?.length) {
      const recipients = await Promise.all(flags.recipient.map((r) => backends.recipient(r)))
      optionsFor = () => async () => ({recipients, scope: scope ?? 'strict'})
    } else {
      const rules = new CreationRules(backends)
      optionsFor = (file) => (s) => rules.optionsFor(file, s, {scope})
    }
    let bitnami: ReturnType<typeof loadUnsealKeyring> | undefined
    const bitnamiKeys = async () => {
      if (!flags.key?.length)
        throw new KsealError('ERR_NO_KEY', "a Bitnami SealedSecret: pass the sealed-secrets controller's private key with --key")
      bitnami ??= loadUnsealKeyring(flags.key, backends)
      return (await bitnami).rsaKeys
    }
    const sealing = flags.cert || flags['controller-namespace'] || flags['controller-name']
    let cert: ReturnType<typeof resolveCertificate> | undefined
    const sealFor = sealing
      ? async () => {
          cert ??= resolveCertificate(certificateSource(flags), {cwd: process.cwd(), sha256: flags['cert-sha256']})
          return {recipient: (await cert).recipient, scope: scope ?? 'strict'}
        }
      : undefined
    const sops = this.sopsKeys(keyring)
    const converted = new Map<string, Converted[]>()
    const result = await runBatch(
      files,
      async (text, file) => {
        const r = await importText(text, file, {optionsFor: optionsFor(file), sops, bitnamiKeys, sealFor})
        converted.set(file!, r.converted)
        return flags['dry-run'] ? text : r.text
      },
      {inPlace: true, quiet: flags.quiet, verb: flags['dry-run'] ? 'reading' : 'importing'},
    )
    for (const o of result.outcomes) {
      if (o.error) continue
      for (const c of converted.get(o.file) ?? []) process.stdout.write(`${o.file}#${c.document} ${c.secret}: ${c.from} → ${c.to}\n`)
    }
    if (flags['dry-run']) this.note('dry run: nothing was written', flags.quiet)
    this.report(result.errors)
  }
}
