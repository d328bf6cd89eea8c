/**
 * The repository's Dockerfile, read: its stages and their instructions (comments dropped, line
 * continuations joined), so tests can assert what the images hold and assemble the image's root
 * filesystem by following the very steps the Dockerfile gives.
 */
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {ROOT} from './cli.js'

export interface Instruction {
  /** Upper-case instruction: FROM, RUN, COPY, ... */
  op: string
  /** Everything after the instruction word. */
  args: string
  /** The instruction as written (continuations joined). */
  line: string
}

export interface Stage {
  /** The image or stage it is built FROM. */
  from: string
  /** Its `AS` name, if any. */
  name?: string
  instructions: Instruction[]
}

export function readDockerfile(file = path.join(ROOT, 'Dockerfile')): Stage[] {
  const lines = readFileSync(file, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  const stages: Stage[] = []
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!
    const instruction = {op: op.toUpperCase(), args, line}
    if (instruction.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!
      stages.push({from: m[1], name: m[2], instructions: []})
    } else {
      stages.at(-1)!.instructions.push(instruction)
    }
  }
  return stages
}

/** A stage and the stages it is built on: the base image, and every instruction from the first stage on. */
export function stageChain(stages: Stage[], stage: Stage): {base: string; instructions: Instruction[]} {
  const parent = stages.find((s) => s.name === stage.from)
  if (!parent) return {base: stage.from, instructions: stage.instructions}
  const up = stageChain(stages, parent)
  return {base: up.base, instructions: [...up.instructions, ...stage.instructions]}
}
