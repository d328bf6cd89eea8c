/** The CLI entry that bin/run.js loads: oclif, rooted at the package (found from this file up). */
import {provideLoginEnv} from './login-env.js'

// oclif reads HOME and SHELL (or the passwd entry) while it loads, so it is loaded only after this.
provideLoginEnv()
const {execute} = (await import('@oclif/core/execute')).default
await execute({dir: import.meta.url})
