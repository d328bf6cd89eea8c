import {Flags, KsealCommand} from '../src/cli/base.js'
import {KsealError} from '../src/core/errors.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../src/core/names.js'
import {listControllerKeys, listKeys} from '../src/ops/keys.js'

export default class Keys extends KsealCommand {
  static override summary = 'List the keys kseal can find to decrypt with: id, backend, file, created, expiry.'
  static override description = `Looks where decrypt looks: --key, then KSEAL_KEYS, then $XDG_CONFIG_HOME/kseal/keys. Dates come
from the certificate beside an RSA key (NAME.crt next to NAME.key); without one, "created" is the
key file's modification time. No private key material is printed.

With --controller it lists the in-cluster unsealer's keys instead (from its /v1/keys, through the
API server's service proxy or --controller-url): key id, created, whether it is the active sealing
key, whether --key-cutoff retired it, and how many SealedSecrets are still sealed to it.

With --import FILE an administrator adds key pairs the controller did not make (from another
cluster, a backup without its trust root, or the sealed-secrets controller): FILE is a PEM private
key, with its certificate in the same file or beside it (NAME.crt), or key Secrets as kubectl writes
them (kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml);
--import-from-cluster NAMESPACE reads the sealed-secrets key Secrets from the cluster instead. The
controller trusts only keys it made or that were imported this way (signed with its trust root, which
this reads through your kubeconfig); a Secret merely labelled kseal.dev/sealing-key is ignored.

An imported key opens what was sealed to it (kseal's SealedSecrets by key id, Bitnami's by trying
each key) and never seals: the controller keeps sealing with its own newest key. --active makes the
one imported key the sealing key instead (dated now, until the next renewal). Key Secrets already
imported are skipped, so the same import can be run again after the old controller made a new key.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json -k ./keys',
    '<%= config.bin %> <%= command.id %> --controller',
    '<%= config.bin %> <%= command.id %> --controller --controller-url http://127.0.0.1:8080 --json',
    '<%= config.bin %> <%= command.id %> --import old-cluster.key --controller-namespace kseal-system',
    '<%= config.bin %> <%= command.id %> --import bitnami-keys.yaml',
    '<%= config.bin %> <%= command.id %> --import-from-cluster kube-system',
  ]
  static override flags = {
    key: Flags.string({
      char: 'k',
      multiple: true,
      multipleNonGreedy: true,
      description: 'Also look here: a key URI, file or directory. Repeatable.',
    }),
    json: Flags.boolean({description: 'Print a JSON array.'}),
    controller: Flags.boolean({description: "List the in-cluster controller's sealing keys instead of local ones.", exclusive: ['key']}),
    'controller-namespace': Flags.string({
      default: CONTROLLER_NAMESPACE,
      description: 'With --controller: namespace of the controller and its Service.',
    }),
    'controller-name': Flags.string({default: CONTROLLER_NAME, description: "With --controller: name of the controller's Service."}),
    'controller-url': Flags.string({description: 'With --controller: ask the controller at this URL instead of through the cluster API.'}),
    kubeconfig: Flags.string({description: 'With --controller: kubeconfig file. [default: $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'With --controller: kubeconfig context.'}),
    import: Flags.string({
      description:
        'Import this private key (PEM; certificate in the file or beside it), or the key Secrets in this manifest, as keys of the controller in --controller-namespace.',
      exclusive: ['key', 'controller', 'import-from-cluster'],
    }),
    'import-from-cluster': Flags.string({
      description:
        "Import the sealed-secrets controller's key Secrets (label sealedsecrets.bitnami.com/sealed-secrets-key) from this namespace.",
      exclusive: ['key', 'controller'],
    }),
    active: Flags.boolean({
      description: 'With --import: the imported key also seals (it becomes the newest key). Default: it only opens.',
    }),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Keys)
    if (flags.controller) return this.controllerKeys(flags)
    if (flags.import || flags['import-from-cluster']) return this.importKeys(flags)
    if (flags.active) throw new KsealError('ERR_USAGE', '--active goes with --import or --import-from-cluster')
    const keys = await listKeys(this.keyring(flags.key))
    if (flags.json) {
      process.stdout.write(JSON.stringify(keys, null, 2) + '\n')
      return
    }
    if (keys.length === 0) {
      this.note('no keys found (looked in --key, KSEAL_KEYS and the config directory; create one with kseal keygen)', flags.quiet)
      return
    }
    const rows = [
      ['KEY ID', 'BACKEND', 'CREATED', 'EXPIRES', 'SOURCE'],
      ...keys.map((k) => [k.kid, k.backend, k.created?.slice(0, 10) ?? '-', k.expires?.slice(0, 10) ?? '-', k.source]),
    ]
    printTable(rows)
  }

  private async importKeys(flags: {
    import?: string
    'import-from-cluster'?: string
    active: boolean
    quiet: boolean
    'controller-namespace'?: string
    kubeconfig?: string
    context?: string
  }): Promise<void> {
    const {importClusterKeys, importKeyFile} = await import('../src/ops/import-key.js')
    const o = {
      namespace: flags['controller-namespace'] ?? CONTROLLER_NAMESPACE,
      kubeconfig: flags.kubeconfig,
      context: flags.context,
      active: flags.active,
    }
    const done = flags.import ? await importKeyFile(flags.import, o) : await importClusterKeys(flags['import-from-cluster']!, o)
    for (const r of done) {
      const what = r.existed ? `key ${r.kid} was already imported (Secret ${r.secret})` : `imported key ${r.kid} as Secret ${r.secret}`
      const use = r.existed ? '' : r.decryptOnly ? ', to open only' : ', sealing from now on'
      this.note(`${what}${use}${r.from === flags.import ? '' : ` (from ${r.from})`}`, flags.quiet)
    }
  }

  private async controllerKeys(flags: {
    json: boolean
    quiet: boolean
    'controller-url'?: string
    'controller-namespace'?: string
    'controller-name'?: string
    kubeconfig?: string
    context?: string
  }): Promise<void> {
    const {controllerTarget} = await import('../src/client/endpoints.js')
    const keys = await listControllerKeys(controllerTarget(flags))
    if (flags.json) {
      process.stdout.write(JSON.stringify(keys, null, 2) + '\n')
      return
    }
    if (keys.length === 0) {
      this.note('the controller has no sealing key yet', flags.quiet)
      return
    }
    printTable([
      ['KEY ID', 'CREATED', 'ACTIVE', 'SEALED SECRETS'],
      ...keys.map((k) => [
        k.kid,
        k.created,
        k.active ? 'yes' : k.decryptOnly ? 'no (imported, opens only)' : k.retired ? 'no (before --key-cutoff)' : 'no',
        k.sealedSecrets === undefined ? '-' : String(k.sealedSecrets),
      ]),
    ])
  }
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  process.stdout.write(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n')
}
