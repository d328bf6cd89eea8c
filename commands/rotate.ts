import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {runBatch} from '../src/ops/batch.js'
import {CreationRules} from '../src/config/config.js'
import {removalIds, type RotatePlan, rotateText, type SecretChange} from '../src/ops/rotate.js'

export default class Rotate extends KsealCommand {
  static override summary = 'Change who can decrypt encrypted Secrets, or rotate their data keys.'
  static override description = `Re-wraps each Secret's data key for a new set of recipients: values keep their ciphertext, so the
git diff touches only the recipient entries and the MAC (format 2's MAC covers the recipients).
--data-key also replaces the data key and re-encrypts every value: the step that locks a removed
recipient out. With neither --add-recipient nor --remove-recipient (and without --data-key), each
Secret is brought in line with its .kseal.yaml rule, recipients and scope (as sops updatekeys does);
--data-key alone keeps the recipients. Over many files every file is attempted, each is written
atomically, and a summary line per changed Secret goes to stderr (to stdout with --dry-run).

Every operation here needs the data key, so a key that opens each Secret (--key, KSEAL_KEYS or
~/.config/kseal/keys): the Secret is opened and its MAC checked before anything is re-wrapped, and
the new MAC covers the new recipient set. A new data key (--data-key, a scope change, and the
upgrade of a format 1 Secret to format 2, which rotate always does) is wrapped only for recipients
named here (--add-recipient), in the .kseal.yaml rule for the file, or held locally (a key you hold,
or the KMS key that opened it) — never for an entry just because it is in the file; an entry none of
those vouches for stops the run, naming it: pass it with --add-recipient, or drop it with
--remove-recipient.

SOPS files (kseal encrypt --format sops, or sops's own) are rotated the same way, their MAC checked
first; values keep their ciphertext unless --data-key. SOPS does not authenticate its key entries,
so every entry that keeps access is vouched for as above, also when the data key stays; a KMS
entry is wrapped for as you name it, without the role, profile or context the file's entry had.`
  static override examples = [
    {
      description: 'Give the CI KMS key access to every Secret in a tree',
      command: '<%= config.bin %> <%= command.id %> -i --add-recipient awskms:arn:aws:kms:eu-west-1:111122223333:alias/ci k8s/',
    },
    {
      description: 'Remove a departed key and lock it out with fresh data keys',
      command: '<%= config.bin %> <%= command.id %> -i --remove-recipient rsa:old-laptop.crt --data-key k8s/',
    },
    {
      description: 'Move from an RSA key to KMS',
      command:
        '<%= config.bin %> <%= command.id %> -i --add-recipient awskms:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --remove-recipient d5326737ee564566 k8s/',
    },
    {
      description: 'Show what following .kseal.yaml would change, without writing',
      command: '<%= config.bin %> <%= command.id %> --dry-run k8s/',
    },
    {
      description: 'Upgrade format 1 Secrets to format 2 (authenticated recipients), keeping the key you hold and a KMS key',
      command: '<%= config.bin %> <%= command.id %> -i -a awskms:arn:aws:kms:eu-west-1:111122223333:alias/ci k8s/',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    'in-place': Flags.boolean({char: 'i', description: 'Rewrite the files (atomically) instead of writing to stdout.'}),
    'add-recipient': Flags.string({
      char: 'a',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A key URI to add (rsa:PATH, awskms:ARN, age:age1..., pgp:FINGERPRINT). Repeatable.',
    }),
    'remove-recipient': Flags.string({
      char: 'R',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A recipient to remove: its key URI, backend:kid, or key id. Repeatable.',
    }),
    'data-key': Flags.boolean({description: 'Also replace each data key and re-encrypt every value.'}),
    'dry-run': Flags.boolean({char: 'n', description: 'Report what would change; write nothing.'}),
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A private key that opens the Secrets (see kseal decrypt). Repeatable.',
    }),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Rotate)
    const files = await this.expand(argv as string[], flags.quiet)
    this.cli.bulk = files.files.length > 1
    const backends = this.backends()
    const add = await Promise.all((flags['add-recipient'] ?? []).map((r) => backends.recipient(r)))
    const removal = await removalIds(flags['remove-recipient'] ?? [], backends)
    const plan: RotatePlan = {add, remove: flags['remove-recipient'] ?? [], dataKey: flags['data-key']}
    const rules = new CreationRules(backends)
    if (add.length === 0 && removal.size === 0 && !flags['data-key']) {
      plan.rules = rules
      await plan.rules.preload(files.files.map((f) => (f === '-' ? undefined : f)))
    } else {
      plan.config = rules
    }
    const keyring = this.keyring(flags.key)
    if (this.cli.bulk) await keyring.prepare()
    const sops = this.sopsKeys(keyring)
    const changes: {file: string; change: SecretChange}[] = []
    const dry = flags['dry-run']
    const result = await runBatch(
      files,
      async (text, file) => {
        const r = await rotateText(text, file, plan, removal, keyring, sops)
        for (const change of r.changes) changes.push({file: file ?? '(stdin)', change})
        return dry ? text : r.text
      },
      {inPlace: flags['in-place'] && !dry, quiet: flags.quiet, verb: 'rotating'},
    )
    if (result.stdout !== null && !dry) process.stdout.write(result.stdout)
    const order = new Map(files.files.map((f, i) => [f === '-' ? '(stdin)' : f, i]))
    changes.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.change.document - b.change.document)
    const lines = changes.map(({file, change: c}) => {
      const parts = [
        ...c.added.map((a) => `+${a}`),
        ...c.removed.map((r) => `-${r}`),
        ...(c.scope ? [`scope ${c.scope.from} → ${c.scope.to}`] : []),
        ...(c.dataKey ? ['new data key'] : []),
        ...(c.upgraded ? ['format 1 → 2'] : []),
      ]
      return `${dry ? 'would rotate' : 'rotated'} ${file}: document ${c.document} (Secret ${c.secret}): ${parts.join(', ')}`
    })
    if (dry) process.stdout.write(lines.map((l) => l + '\n').join('') || 'nothing to rotate\n')
    else if (!flags.quiet) for (const l of lines) process.stderr.write(`kseal: ${l}\n`)
    this.report(result.errors)
  }
}
