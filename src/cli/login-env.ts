/**
 * The two login variables oclif needs before it can run anything. At start-up oclif, and
 * clean-stack which it loads, ask the OS for the user's home directory and login shell:
 * `os.homedir()` when HOME is unset and `os.userInfo().shell` when SHELL is unset. Both read the
 * passwd database, so as a numeric uid that has no passwd entry — how container images run (the
 * controller as 65532, the Argo CD sidecar as 999) — they throw ENOENT, and not even `--version`
 * would run. Before oclif loads, the process gets what such a user lacks:
 *
 * - HOME, when unset or empty: the passwd entry's home directory, or (no entry) `/nonexistent`,
 *   the home of Debian's `nobody` — a path no unprivileged user can create, so nothing is read from
 *   or written to a place someone else controls (not a shared /tmp, where another user could plant
 *   ~/.aws/config or ~/.config/kseal/keys). The Deployment still sets HOME=/tmp, its own emptyDir.
 * - SHELL, when unset and there is no passwd entry: `/bin/sh`, what login(1) uses for an empty
 *   shell field. Only oclif reads it (for `kseal autocomplete`'s default shell).
 *
 * Both are set only when missing, and children (the editor of `kseal edit`, git) inherit them.
 */
import os from 'node:os'

export const NO_HOME = '/nonexistent'
export const DEFAULT_SHELL = '/bin/sh'

type Passwd = () => {homedir: string}

export function provideLoginEnv(env: NodeJS.ProcessEnv = process.env, passwd: Passwd = () => os.userInfo()): void {
  let entry: {homedir: string} | null | undefined
  const lookup = () => {
    if (entry === undefined) {
      try {
        entry = passwd()
      } catch {
        entry = null // uv_os_get_passwd: ENOENT, no entry for this uid
      }
    }
    return entry
  }
  if (!env.HOME) env.HOME = lookup()?.homedir || NO_HOME
  if (env.SHELL === undefined && lookup() === null) env.SHELL = DEFAULT_SHELL
}
