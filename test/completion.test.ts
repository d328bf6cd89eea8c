/**
 * Shell completion through @oclif/plugin-autocomplete: `kseal autocomplete bash|zsh` builds the
 * completion scripts in the oclif cache directory (XDG_CACHE_HOME here) and prints the set-up; the
 * bash script then really completes kseal's commands and flags.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {cleanEnv, kseal} from './support/cli.js'

let cache: string
const env = () => cleanEnv({XDG_CACHE_HOME: cache, SHELL: '/bin/bash'})

beforeAll(() => {
  cache = mkdtempSync(path.join(os.tmpdir(), 'kseal-completion-'))
})

afterAll(() => rmSync(cache, {recursive: true, force: true}))

describe('kseal autocomplete', () => {
  it('bash: builds the completion cache and prints the set-up instructions', async () => {
    const r = await kseal(['autocomplete', 'bash'], {env: env()})
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('printf "$(kseal autocomplete script bash)" >> ~/.bashrc; source ~/.bashrc')
    expect(existsSync(path.join(cache, 'kseal', 'autocomplete', 'functions', 'bash', 'kseal.bash'))).toBe(true)
    const script = await kseal(['autocomplete', 'script', 'bash'], {env: env()})
    expect(script.code).toBe(0)
    expect(script.stdout).toContain(`KSEAL_AC_BASH_SETUP_PATH=${path.join(cache, 'kseal', 'autocomplete', 'bash_setup')}`)
  })

  it('the bash completion completes commands and their flags', async () => {
    expect((await kseal(['autocomplete', 'bash'], {env: env()})).code).toBe(0) // builds the cache it sources
    const complete = (words: string[]) => {
      const line = `source "${path.join(cache, 'kseal', 'autocomplete', 'bash_setup').replace(/"/g, '\\"')}"
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMP_LINE="${words.join(' ')}"
_kseal_autocomplete; echo "\${COMPREPLY[@]}"`
      const r = spawnSync(
        'bash',
        ['--norc', '-c', `KSEAL_AC_BASH_SETUP_PATH=${path.join(cache, 'kseal', 'autocomplete', 'bash_setup')}; ${line}`],
        {encoding: 'utf8'},
      )
      expect(r.stderr).toBe('')
      return r.stdout.trim().split(/\s+/)
    }
    expect(complete(['kseal', 'e'])).toEqual(expect.arrayContaining(['edit', 'encrypt']))
    expect(complete(['kseal', 'te'])).toEqual(['textconv'])
    expect(complete(['kseal', 'check', '--st'])).toEqual(['--staged'])
    expect(complete(['kseal', 'edit', '--re'])).toEqual(['--recipient'])
  })

  it('zsh: builds a completion function that knows every command', async () => {
    const r = await kseal(['autocomplete', 'zsh'], {env: env()})
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('kseal autocomplete script zsh')
    const fn = readFileSync(path.join(cache, 'kseal', 'autocomplete', 'functions', 'zsh', '_kseal'), 'utf8')
    for (const c of ['encrypt', 'decrypt', 'edit', 'check', 'textconv', 'krm']) expect(fn).toContain(c)
  })
})
