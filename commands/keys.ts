import {Flags, KsealCommand} from '../src/cli/base.js'
import {listKeys} from '../src/keylist.js'

export default class Keys extends KsealCommand {
  static override summary = 'List the keys kseal can find to decrypt with: id, backend, file, created, expiry.'
  static override description = `Looks where decrypt looks: --key, then KSEAL_KEYS, then $XDG_CONFIG_HOME/kseal/keys. Dates come
from the certificate beside an RSA key (NAME.crt next to NAME.key); without one, "created" is the
key file's modification time. No private key material is printed.`
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --json -k ./keys',
  ]
  static override flags = {
    key: Flags.string({char: 'k', multiple: true, multipleNonGreedy: true, description: 'Also look here: a key URI, file or directory. Repeatable.'}),
    json: Flags.boolean({description: 'Print a JSON array.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Keys)
    const keys = await listKeys(this.keyring(flags.key))
    if (flags.json) {
      process.stdout.write(JSON.stringify(keys, null, 2) + '\n')
      return
    }
    if (keys.length === 0) {
      this.note('no keys found (looked in --key, KSEAL_KEYS and the config directory; create one with kseal keygen)', flags.quiet)
      return
    }
    const rows = [['KEY ID', 'BACKEND', 'CREATED', 'EXPIRES', 'SOURCE'], ...keys.map((k) => [k.kid, k.backend, k.created?.slice(0, 10) ?? '-', k.expires?.slice(0, 10) ?? '-', k.source])]
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
    process.stdout.write(rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n')
  }
}
