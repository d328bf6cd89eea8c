import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runCheck} from '../src/cli/hot.js'

export default class Check extends KsealCommand {
  static override summary = 'Fail (exit 1) when a Secret holds plaintext values: a pre-commit guard.'
  static override description = `Prints one line per v1 Secret (also inside a List) that holds values that are not encrypted —
file, document, Secret and the keys — and exits 1; exits 0 when every Secret value is encrypted.
With no PATH it checks the current directory (recursively: *.yaml, *.yml, *.json; - reads stdin).
With --staged it checks what git is about to commit: the staged blobs in the index, not the files
in the working tree (PATHs then limit it like git pathspecs).

Helm chart templates (files under a templates/ directory that hold {{ }} actions) are skipped with
a note: check what they render instead (helm template CHART | kseal check -). Other files that are
not valid YAML or JSON are skipped too, unless they mention kind: Secret — those cannot be vouched
for, and check exits 2. A Secret that uses a YAML merge key (<<) is refused (exit 2): kubectl would
merge in values that kseal does not see.

Encrypted Secrets still in format 1 get a warning on stderr ("recipients not authenticated (format
v1): run kseal rotate to upgrade") but do not fail the check: they decrypt as before, and upgrading
needs a key, which a pre-commit hook may not have.`
  static override examples = [
    {description: 'Check a directory', command: '<%= config.bin %> <%= command.id %> k8s/'},
    {description: 'As a git pre-commit hook (.git/hooks/pre-commit)', command: 'exec <%= config.bin %> <%= command.id %> --staged'},
    {description: 'Check a rendered stream', command: 'kustomize build overlays/prod | <%= config.bin %> <%= command.id %> -'},
    {description: 'Check what a Helm chart renders', command: 'helm template ./chart | <%= config.bin %> <%= command.id %> -'},
  ]
  static override strict = false
  static override args = {
    path: Args.string({description: 'Files or directories (default: .); - reads stdin. With --staged: pathspecs.', ignoreStdin: true}),
  }
  static override flags = {
    staged: Flags.boolean({description: "Check the files staged in git's index (what the next commit holds) instead of the working tree."}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Check)
    await runCheck(this.cli, flags, argv as string[])
  }
}
