#!/usr/bin/env node
// The encrypt benchmark's baseline: what the `yaml` package alone costs to parse and re-serialize a
// corpus, as a process of its own that reads and writes the same files as `kseal encrypt -i` does.
//   node bench/yaml-baseline.mjs DIR
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {parseAllDocuments} from 'yaml'

const dir = process.argv[2]
for (const name of readdirSync(dir).sort()) {
  const file = path.join(dir, name)
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), {version: '1.1'})
  writeFileSync(file, docs.map((d) => d.toString()).join(''))
}
