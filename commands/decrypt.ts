import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runDecrypt} from '../src/cli/hot.js'

export default class Decrypt extends KsealCommand {
  static override summary = 'Decrypt encrypted Secret manifests; every other document passes through.'
  static override description = `The exact inverse of encrypt. Reads files, directories or stdin and writes the manifests with
every encrypted Secret decrypted, so it sits in a deploy pipeline. The key id in each Secret picks
the key directly. Keys come from --key, then KSEAL_KEYS (files or directories, ':'-separated), then
$XDG_CONFIG_HOME/kseal/keys (~/.config/kseal/keys). On any failure nothing is written to stdout.
With -i the decrypted files are written with mode 0600 (they hold plaintext). Directory walks skip
symbolic links, and a link is never replaced.

SOPS files (YAML and JSON, as sops writes them) and kubesec Secrets are decrypted too, also mixed
with kseal's and plain documents in one stream: values keep the types sops recorded, the sops
block or kubesec footer is removed, and the MAC is always verified (tampered: exit 3, nothing
written). Their keys: age keys from the sources above and from SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and
~/.config/sops/age/keys.txt; PGP keys from your gpg keyring; AWS KMS with your AWS credentials.`
  static override examples = [
    {
      description: 'Decrypt in a deploy pipeline',
      command: 'kustomize build overlays/prod | <%= config.bin %> <%= command.id %> | kubectl apply -f -',
    },
    {
      description: 'Decrypt a file with an explicit key',
      command: '<%= config.bin %> <%= command.id %> -k rsa:~/.config/kseal/keys/kseal.key secret.yaml',
    },
    {description: 'Decrypt in place', command: '<%= config.bin %> <%= command.id %> -i secret.yaml'},
    {
      description: 'Decrypt a file sops wrote, with the age key sops uses',
      command: 'SOPS_AGE_KEY_FILE=~/.config/sops/age/keys.txt <%= config.bin %> <%= command.id %> secret.sops.yaml',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    'in-place': Flags.boolean({char: 'i', description: 'Rewrite the files (atomically) instead of writing to stdout.'}),
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description:
        'A key: rsa:PATH or age:PATH (key files), awskms:ARN (only that KMS key or alias is called: an alias as the alias, so KMS checks its current key), pgp:FINGERPRINT (only that gpg key), or a path to a key file or a directory of keys. Repeatable. Without it, KMS entries open with the AWS credentials in the environment, calling the key the entry names as far as IAM allows.',
    }),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Decrypt)
    await runDecrypt(this.cli, flags, argv as string[])
  }
}
