import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../../src/cli/base.js'
import {preview} from '../../src/ops/external.js'

export default class ExternalRender extends KsealCommand {
  static override summary = 'Show the Secret an ExternalSecret would produce, fetched with your own credentials.'
  static override description = `Reads ExternalSecrets (kseal.dev/v1) from FILE, finds each one's SecretStore or
ClusterSecretStore (in FILE, in --store files, else in the cluster), fetches from the store and prints
the Secret the controller would write: type, labels, annotations, owner, data. It is for debugging
store paths, properties and templates; nothing is written to the cluster.

Credentials are yours, not the controller's: AWS from your standard chain (AWS_PROFILE, environment,
SSO; a store's access-key Secret and role still apply, its jwt auth is replaced by your chain);
Vault from VAULT_TOKEN, VAULT_ADDR and VAULT_CACERT when set, else the store's own auth; the
kubernetes provider with your kubeconfig's identity. The Secrets and ServiceAccounts a store refers
to are read from --secrets files, else through your kubeconfig, in the ExternalSecret's namespace.

Values are masked as <N bytes> unless --show-values; with it the output is a plaintext Secret: keep
it out of git. Each ExternalSecret that fails is reported on one line; the others are still shown.`
  static override examples = [
    {description: 'Preview with the store in the same file', command: '<%= config.bin %> <%= command.id %> db.externalsecret.yaml'},
    {
      description: 'Stores and credential Secrets from files, no cluster',
      command: '<%= config.bin %> <%= command.id %> db.externalsecret.yaml --store stores.yaml --secrets aws-keys.yaml',
    },
    {
      description: 'Check a Vault path and template with your own token',
      command:
        'VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=$(vault print token) <%= config.bin %> <%= command.id %> app.yaml --show-values',
    },
  ]
  static override args = {
    file: Args.string({description: 'Manifest with ExternalSecrets (and maybe stores); - reads stdin.', required: true}),
  }
  static override flags = {
    store: Flags.string({
      char: 's',
      multiple: true,
      multipleNonGreedy: true,
      description: 'A file with SecretStores or ClusterSecretStores. Repeatable.',
    }),
    secrets: Flags.string({
      multiple: true,
      multipleNonGreedy: true,
      description:
        'A file with the Secrets (and ServiceAccounts, Namespaces) that stores refer to, read instead of the cluster. Repeatable.',
    }),
    'show-values': Flags.boolean({description: 'Print the values (base64, as in a Secret) instead of <N bytes>.'}),
    namespace: Flags.string({char: 'n', description: 'Namespace of ExternalSecrets that name none. [default: default]'}),
    output: Flags.string({
      char: 'o',
      options: ['yaml', 'json'],
      default: 'yaml',
      description: 'Output format (yaml has a comment per ExternalSecret saying what was read).',
    }),
    kubeconfig: Flags.string({description: 'Kubeconfig file, when the cluster is needed. [default: $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'Kubeconfig context to use.'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(ExternalRender)
    // The AWS SDK warns on Node 20 that its releases after January 2027 will need Node 22: a notice
    // for whoever upgrades kseal's dependencies, not for someone previewing a Secret.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    const r = await preview({
      files: [args.file],
      stores: flags.store ?? [],
      secrets: flags.secrets ?? [],
      showValues: flags['show-values'],
      output: flags.output as 'yaml' | 'json',
      namespace: flags.namespace,
      kube: {kubeconfig: flags.kubeconfig, context: flags.context},
      env: process.env,
    })
    process.stdout.write(r.stdout)
    for (const n of r.notes) this.note(n, flags.quiet)
    this.report(r.errors)
  }
}
