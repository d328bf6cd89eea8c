import {Flags, KsealCommand} from '../src/cli/base.js'
import {configKeysDir} from '../src/keyring/keyring.js'
import {keygen} from '../src/ops/keygen.js'

export default class Keygen extends KsealCommand {
  static override summary = 'Create an RSA key pair for the local backend: NAME.key (0600) and NAME.crt.'
  static override description = `Writes a PKCS#8 private key (mode 0600) and a self-signed X.509 certificate, and prints the key
id that encrypted files record. By default they go to the directory decrypt looks in
($XDG_CONFIG_HOME/kseal/keys); share the .crt with whoever encrypts, keep the .key.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --out ./keys --name team --bits 4096 --days 730',
  ]
  static override flags = {
    out: Flags.string({description: 'Directory to write to. [default: $XDG_CONFIG_HOME/kseal/keys]'}),
    name: Flags.string({default: 'kseal', description: 'Base name of the files.'}),
    bits: Flags.integer({default: 4096, description: 'RSA modulus size (2048 to 16384).'}),
    days: Flags.integer({default: 3650, description: 'Certificate validity in days.'}),
    force: Flags.boolean({description: 'Replace existing files.'}),
    json: Flags.boolean({description: 'Print the result as JSON.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Keygen)
    const r = await keygen({
      dir: flags.out ?? configKeysDir(process.env),
      name: flags.name,
      bits: flags.bits,
      days: flags.days,
      force: flags.force,
    })
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({kid: r.kid, key: r.keyFile, certificate: r.certFile, notAfter: r.notAfter.toISOString()}, null, 2) + '\n',
      )
      return
    }
    process.stdout.write(
      `key id:      ${r.kid}\nprivate key: ${r.keyFile}\ncertificate: ${r.certFile}\nexpires:     ${r.notAfter.toISOString()}\n` +
        `encrypt with: kseal encrypt -r rsa:${r.certFile} FILE\n`,
    )
  }
}
