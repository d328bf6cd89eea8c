/**
 * docs/reference/cli.md is generated from the commands (scripts/docs.mjs, `npm run docs`): rendered
 * again here from the built CLI — its oclif.manifest.json and the exit-code table — it must equal the
 * committed page, so a changed flag, description or example cannot leave the reference behind.
 */
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {expect, it} from '@jest/globals'
import {cleanEnv, ROOT, run} from './support/cli.js'

const PAGE = path.join(ROOT, 'docs', 'reference', 'cli.md')

it('docs/reference/cli.md is what npm run docs generates from the commands (run npm run docs after changing a command)', async () => {
  const r = await run(process.execPath, [path.join(ROOT, 'scripts', 'docs.mjs'), '--stdout'], {env: cleanEnv()})
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  expect(readFileSync(PAGE, 'utf8')).toBe(r.stdout)
})

it('the reference has a section for every command in oclif.manifest.json, and the exit codes', () => {
  const page = readFileSync(PAGE, 'utf8')
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, unknown>}
  const ids = Object.keys(manifest.commands)
  expect(ids.length).toBeGreaterThan(10)
  for (const id of ids) expect([id, page.includes(`\n## kseal ${id.replace(/:/g, ' ')}\n`)]).toEqual([id, true])
  expect(page).toMatch(/\n## Exit codes\n[\s\S]*\n\| 3 \| decryption or integrity failure/)
})
