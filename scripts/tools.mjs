// Real tools the tests drive (test/support/tools.ts): peer implementations (age, gpg, openssl), the
// runtimes that run kseal as its images do (bubblewrap; runc and umoci for the OCI image) and the
// hook runner users wire `kseal check` into (pre-commit). Installed from Debian's packages when
// missing, so a fresh machine needs nothing done by hand; when all are present this does nothing
// and prints nothing. kubectl and kpt are not Debian packages: their tests skip, with a line, where
// they are not installed.
import {spawnSync} from 'node:child_process'

const TOOLS = [
  {bin: 'age', pkg: 'age'},
  {bin: 'gpg', pkg: 'gnupg'},
  {bin: 'openssl', pkg: 'openssl'},
  {bin: 'bwrap', pkg: 'bubblewrap'},
  {bin: 'runc', pkg: 'runc'},
  {bin: 'umoci', pkg: 'umoci'},
  {bin: 'pre-commit', pkg: 'pre-commit'},
]

function has(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], {stdio: 'ignore'}).status === 0
}

export function ensureTools() {
  const missing = TOOLS.filter((t) => !has(t.bin))
  if (missing.length === 0) return
  const pkgs = missing.map((t) => t.pkg)
  const root = process.getuid?.() === 0
  const sudo = root ? [] : has('sudo') ? ['sudo', '-n'] : null
  if (sudo === null || !has('apt-get')) {
    console.error(`kseal tests: missing ${pkgs.join(', ')}; install them (apt-get install ${pkgs.join(' ')}).`)
    process.exit(1)
  }
  console.error(`kseal tests: installing ${pkgs.join(', ')} from Debian packages`)
  const apt = (args) =>
    spawnSync(sudo[0] ?? 'apt-get', sudo.length ? [...sudo.slice(1), 'apt-get', ...args] : args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {...process.env, DEBIAN_FRONTEND: 'noninteractive'},
    })
  apt(['update', '-q'])
  const r = apt(['install', '-y', '-q', '--no-install-recommends', ...pkgs])
  if (r.status !== 0 || missing.some((t) => !has(t.bin))) {
    console.error(`kseal tests: could not install ${pkgs.join(', ')}`)
    process.exit(1)
  }
}
