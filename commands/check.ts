import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {checkManifests, type Finding, isHelmTemplate, mayHoldSecret, stagedManifests} from '../src/ops/check.js'
import {EXIT, formatWhere, isKsealError, type KsealError, type Where} from '../src/core/errors.js'
import {V1_NOTE} from '../src/ops/inspect.js'
import {decodeText, readStdin, readText, STDIN} from '../src/core/files.js'

/** Exit status when plaintext was found: 1, like a linter that found something. */
const FOUND = EXIT.RUNTIME

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
    const paths = argv as string[]
    const errors: KsealError[] = []
    const inputs: {file: string; read: () => Promise<string>}[] = []
    if (flags.staged) {
      for (const f of await stagedManifests(process.cwd(), paths)) inputs.push({file: f.path, read: async () => decodeText(f.text, f.path)})
    } else {
      const expanded = await this.expand(paths.length ? paths : ['.'], flags.quiet)
      // A directory without manifests has no plaintext Secret in it: nothing to report.
      errors.push(...expanded.errors.filter((e) => e.code !== 'ERR_USAGE'))
      for (const f of expanded.files)
        inputs.push({file: f === STDIN ? '(stdin)' : f, read: () => (f === STDIN ? readStdin() : readText(f))})
    }
    const findings: Finding[] = []
    const v1: Where[] = []
    const skipped: string[] = []
    const templates: string[] = []
    for (const input of inputs) {
      let text: string | undefined
      try {
        text = await input.read()
        if (isHelmTemplate(input.file, text)) {
          templates.push(input.file)
          continue
        }
        const found = checkManifests(text, input.file)
        findings.push(...found.plaintext)
        v1.push(...found.v1)
      } catch (e) {
        if (!isKsealError(e)) throw e
        // A problem kseal can name a Secret for (a merge key in one, say) is never skipped.
        if (e.code === 'ERR_INPUT' && e.where.secret === undefined && !(text !== undefined && mayHoldSecret(text))) skipped.push(input.file)
        else errors.push(e.at({file: input.file}))
      }
    }
    for (const f of findings) process.stdout.write(`${formatWhere(f.where)}plaintext ${f.keys.join(', ')}\n`)
    if (templates.length) {
      this.note(
        `skipped ${templates.length} Helm chart template${templates.length > 1 ? 's' : ''} (check what ${templates.length > 1 ? 'they render' : 'it renders'}: helm template CHART | kseal check -): ${templates.join(', ')}`,
        flags.quiet,
      )
    }
    if (skipped.length) {
      this.note(
        `skipped ${skipped.length} file${skipped.length > 1 ? 's' : ''} that ${skipped.length > 1 ? 'are' : 'is'} not valid YAML or JSON and do${skipped.length > 1 ? '' : 'es'} not mention kind: Secret: ${skipped.join(', ')}`,
        flags.quiet,
      )
    }
    // Format 1 is a warning: it still decrypts, but its recipients are not authenticated.
    for (const w of v1) this.note(`${formatWhere(w)}${V1_NOTE}`, flags.quiet)
    if (findings.length) {
      const n = findings.length
      this.note(
        `${n} Secret${n > 1 ? 's hold' : ' holds'} plaintext values: encrypt ${n > 1 ? 'them' : 'it'} with kseal encrypt -i FILE${flags.staged ? ', then git add FILE' : ''}`,
        flags.quiet,
      )
      process.exitCode = FOUND
    }
    this.report(errors)
  }
}
