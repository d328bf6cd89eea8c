/**
 * The import-direction rule (eslint.config.js, docs/ARCHITECTURE.md) bites: code fed through ESLint's
 * Node API as if it were a file in a given folder is refused when it imports against the direction,
 * and passes when it imports what that folder may. (`npm run lint` checks that the tree itself is clean.)
 */
import {describe, expect, it} from '@jest/globals'
import {ESLint} from 'eslint'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {pathToFileURL} from 'node:url'

const ROOT = path.resolve(import.meta.dirname, '..')
const eslint = new ESLint({cwd: ROOT})
const RULE = 'import-x/no-restricted-paths'

/** The direction findings for `code` linted as the file `file` (relative to the repository root). */
async function directionFindings(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, {filePath: path.join(ROOT, file)})
  const fatal = result!.messages.filter((m) => m.fatal)
  if (fatal.length) throw new Error(`${file}: ${fatal.map((m) => m.message).join('; ')}`)
  return result!.messages.filter((m) => m.ruleId === RULE).map((m) => m.message)
}

describe('lint: the import direction', () => {
  it('keys/ may import only src/core: a backend importing an operation is refused, one importing src/core passes', async () => {
    const bad = await directionFindings('keys/x.ts', `import {encryptText} from '../src/ops/encrypt.js'\nexport const x = encryptText\n`)
    expect(bad).toEqual([expect.stringContaining('keys may import only src/core')])
    expect(await directionFindings('keys/x.ts', `import {KsealError} from '../src/core/errors.js'\nexport const x = KsealError\n`)).toEqual(
      [],
    )
  })

  it('src/core imports nothing of ours', async () => {
    const bad = await directionFindings(
      'src/core/x.ts',
      `import {ENVELOPE_KEY} from '../manifest/parse.js'\nexport const x = ENVELOPE_KEY\n`,
    )
    expect(bad).toEqual([expect.stringContaining('src/core may import only nothing of ours')])
    expect(await directionFindings('src/core/x.ts', `import {isObj} from './guards.js'\nexport const x = isObj\n`)).toEqual([])
  })

  it('a lower layer never imports a higher one: src/manifest importing src/sealed is refused', async () => {
    const bad = await directionFindings('src/manifest/x.ts', `import * as s from '../sealed/types.js'\nexport const x = s\n`)
    expect(bad).toHaveLength(1)
  })

  it('src/ops never reaches into the controller, not even through a lazy import()', async () => {
    const bad = await directionFindings('src/ops/x.ts', `export const load = () => import('../controller/controller.js')\n`)
    expect(bad).toEqual([expect.stringContaining('src/ops may import only')])
    expect(await directionFindings('src/ops/x.ts', `export const load = () => import('../sealed/types.js')\n`)).toEqual([])
  })

  it('only the controller command imports src/controller', async () => {
    const code = `export const load = () => import('../src/controller/controller.js')\n`
    expect(await directionFindings('commands/x.ts', code)).toEqual([expect.stringContaining('commands may import only')])
    expect(
      await directionFindings('commands/external/x.ts', `export const load = () => import('../../src/controller/controller.js')\n`),
    ).toHaveLength(1)
    expect(await directionFindings('commands/controller.ts', code)).toEqual([])
  })

  it('client-node values come only through src/kube/client-node.ts (the bundle keeps only what it names); types from anywhere', async () => {
    const [bad] = await eslint.lintText(`import {KubeConfig} from '@kubernetes/client-node'\nexport const x = new KubeConfig()\n`, {
      filePath: path.join(ROOT, 'src/ops/x.ts'),
    })
    expect(bad!.messages.map((m) => m.ruleId)).toEqual(['@typescript-eslint/no-restricted-imports'])
    const [typeOnly] = await eslint.lintText(`import type {KubeConfig} from '@kubernetes/client-node'\nexport type X = KubeConfig\n`, {
      filePath: path.join(ROOT, 'src/ops/x.ts'),
    })
    expect(typeOnly!.messages).toEqual([])
    const [subset] = await eslint.lintText(readFileSync(path.join(ROOT, 'src/kube/client-node.ts'), 'utf8'), {
      filePath: path.join(ROOT, 'src/kube/client-node.ts'),
    })
    expect(subset!.messages).toEqual([])
  })

  it('production code never imports test code', async () => {
    const bad = await directionFindings('src/sealed/x.ts', `import {until} from '../../test/support/until.js'\nexport const x = until\n`)
    expect(bad).toHaveLength(1)
  })
})

describe('lint: the rule and docs/ARCHITECTURE.md name the same folders', () => {
  it('every folder of the rule has its row in the map, and every row of the map is in the rule', async () => {
    const config = pathToFileURL(path.join(ROOT, 'eslint.config.js')).href
    const {MAY_IMPORT} = (await import(config)) as {MAY_IMPORT: Record<string, string[]>}
    const doc = readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8')
    const rows = [...doc.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!.replace(/\/$/, ''))
    const folders = Object.keys(MAY_IMPORT).filter((f) => !f.endsWith('.ts'))
    expect(rows.sort()).toEqual(folders.sort())
  })
})
