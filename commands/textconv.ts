import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runTextconv} from '../src/cli/hot.js'

export default class Textconv extends KsealCommand {
  static override summary = 'For git diff: print a manifest with its Secrets decrypted, or fingerprinted when you hold no key.'
  static override description = `git runs this as the textconv of the "kseal" diff driver, so git diff, git log -p and git show
compare readable text. With a key (--key, KSEAL_KEYS or ~/.config/kseal/keys) every Secret is shown
decrypted; without one each encrypted value is shown as a fingerprint of its ciphertext,
<encrypted sha256:...>, so the diff still tells which keys were added, removed or changed. The
envelope is shown as its format, scope and recipients. SOPS and kubesec files are shown decrypted
when you hold their key (as kseal decrypt finds it), otherwise as they are. It never fails a diff: a file it cannot read
as manifests is printed as it is. It writes only to stdout.

Set up (once per clone):
  echo '*.secret.yaml diff=kseal' >> .gitattributes
  git config diff.kseal.textconv "kseal textconv"
Do not set diff.kseal.cachetextconv: git would store the decrypted text in refs/notes/textconv.`
  static override examples = [
    {description: 'Set up git diff for encrypted files', command: 'git config diff.kseal.textconv "<%= config.bin %> <%= command.id %>"'},
    {description: 'See what git diff will compare', command: '<%= config.bin %> <%= command.id %> k8s/db.secret.yaml'},
  ]
  static override args = {file: Args.string({required: true, description: 'The file git passes.', ignoreStdin: true})}
  static override flags = {
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A private key: rsa:PATH or age:PATH, or a path to a key file or a directory of keys. Repeatable.',
    }),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Textconv)
    await runTextconv(this.cli, flags, args.file)
  }
}
