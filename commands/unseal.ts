import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {loadUnsealKeyring} from '../src/ops/unseal.js'
import {OUTPUT_FORMATS, type OutputFormat} from '../src/manifest/objects.js'
import {runManifests} from '../src/ops/batch.js'
import {unsealStep} from '../src/ops/unseal.js'

export default class Unseal extends KsealCommand {
  static override summary = 'Open SealedSecrets offline with a controller private key: recovery and debugging.'
  static override description = `Reads manifests from files, directories or stdin and writes every SealedSecret as the v1 Secret
the controller would produce; other documents pass through unchanged. Opens kseal SealedSecrets
(kseal.dev/v1, the key id picks the key) and Bitnami sealed-secrets ones (bitnami.com/v1alpha1), so
it is also the way to migrate: unseal with the old controller's key, seal again with kseal's.
--key takes a PEM private key, a directory of keys, or a Secret manifest holding tls.key (the
controller's key Secret as backed up with kubectl get secret -o yaml). On any failure nothing is
written to stdout. The output is plaintext: keep it out of git.`
  static override examples = [
    {
      description: 'Recover Secrets with a backed-up controller key',
      command:
        'kubectl get secret -n kseal-system -l kseal.dev/sealing-key -o yaml > keys-backup.yaml && chmod 600 keys-backup.yaml && <%= config.bin %> <%= command.id %> --key keys-backup.yaml db.sealed.yaml',
    },
    {
      description: 'Migrate from Bitnami sealed-secrets',
      command:
        'kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > bitnami-keys.yaml && chmod 600 bitnami-keys.yaml && <%= config.bin %> <%= command.id %> --key bitnami-keys.yaml old-sealed.yaml | kseal seal --cert kseal.crt > new-sealed.yaml',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    key: Flags.string({
      char: 'k',
      required: true,
      multiple: true,
      multipleNonGreedy: true,
      description: 'A private key: a PEM file (or rsa:PATH), a directory of keys, or a Secret manifest with tls.key. Repeatable.',
    }),
    output: Flags.string({char: 'o', options: [...OUTPUT_FORMATS], default: 'yaml', description: 'Output format.'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Unseal)
    const files = await this.expand(argv as string[], flags.quiet)
    const keys = await loadUnsealKeyring(flags.key, this.backends())
    const result = await runManifests(files, unsealStep(keys), flags.output as OutputFormat)
    if (result.stdout !== null) process.stdout.write(result.stdout)
    this.report(result.errors)
  }
}
