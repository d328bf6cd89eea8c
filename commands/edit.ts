import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {CreationRules} from '../src/config/config.js'
import {editFile, terminalAsk} from '../src/ops/edit.js'
import {SCOPES, type Scope} from '../src/envelope/binding.js'

export default class Edit extends KsealCommand {
  static override summary = 'Open an encrypted Secret file decrypted in $EDITOR and re-encrypt it on save.'
  static override description = `Decrypts FILE into a 0600 file inside a private (0700) temporary directory, opens $VISUAL or
$EDITOR (else vi; run through the shell like git does, so "code --wait" works), and on save
encrypts it again. Each Secret keeps its own data key, recipients and scope (matched by
namespace/name): values you did not change keep their exact ciphertext, changed and new keys are
encrypted, so the git diff shows only what you edited. Saving without changes writes nothing.

If the edited text is not valid (broken YAML, a data value that is not base64, a new Secret and no
-r), kseal asks on the terminal whether to reopen the editor with your edit; without a terminal
(or if you answer n) it exits 2 and the file is left as it was: the plaintext is never kept.
The temporary directory is removed on every exit path, also on Ctrl-C (SIGINT), SIGTERM and SIGHUP.
It is created under $XDG_RUNTIME_DIR when set, else $TMPDIR.

A Secret that is not encrypted yet (or one you add) is encrypted for -r, or else for the first
.kseal.yaml rule that matches it (as kseal encrypt does); with neither, edit refuses to open a file
holding a plaintext Secret.

A SOPS file (one kseal encrypt --format sops or sops wrote) is edited as SOPS: its data keys,
recipients and rules are kept, and unlike sops, values you did not change keep their ciphertext;
lastmodified and the MAC are new. Its keys are found as kseal decrypt finds them.`
  static override examples = [
    {description: 'Edit with your configured editor', command: '<%= config.bin %> <%= command.id %> k8s/db.secret.yaml'},
    {description: 'Use VS Code for this edit', command: 'EDITOR="code --wait" <%= config.bin %> <%= command.id %> k8s/db.secret.yaml'},
    {
      description: 'Encrypt a plaintext Secret file on save for a team certificate',
      command: '<%= config.bin %> <%= command.id %> -r rsa:team.crt new.secret.yaml',
    },
    {
      description: "A plaintext Secret file under a .kseal.yaml rule: encrypted on save for the rule's recipients",
      command: '<%= config.bin %> <%= command.id %> k8s/prod/new.secret.yaml',
    },
  ]
  static override args = {file: Args.string({required: true, description: 'The manifest file to edit.', ignoreStdin: true})}
  static override flags = {
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A private key: rsa:PATH or age:PATH, or a path to a key file or a directory of keys. Repeatable.',
    }),
    recipient: Flags.string({
      char: 'r',
      multiple: true,
      multipleNonGreedy: true,
      description: 'Who can decrypt Secrets that are not encrypted yet (new or plaintext ones): a key URI such as rsa:PATH. Repeatable.',
    }),
    scope: Flags.string({
      options: [...SCOPES],
      description:
        "Scope for Secrets that have no key yet: strict (namespace and name), namespace, or cluster. Default: the .kseal.yaml rule's, else strict.",
    }),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Edit)
    const backends = this.backends()
    const recipients = await Promise.all((flags.recipient ?? []).map((r) => backends.recipient(r)))
    // Without -r, Secrets that have no key yet follow .kseal.yaml, as kseal encrypt does.
    const rules = recipients.length === 0 ? new CreationRules(backends) : undefined
    const keyring = this.keyring(flags.key)
    const result = await editFile(args.file, {
      sops: this.sopsKeys(keyring),
      recipients,
      rules: rules && (await rules.cover(args.file)) ? rules : undefined,
      scope: flags.scope as Scope | undefined,
      keyring,
      env: process.env,
      ask: terminalAsk(),
      tell: (line) => process.stderr.write(`kseal: ${line}\n`),
    })
    this.note(result === 'written' ? `${args.file}: saved, encrypted` : `${args.file}: no changes; not written`, flags.quiet)
  }
}
