/** The CLI entry that bin/run.js loads: oclif, rooted at the package (found from this file up). */
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})
