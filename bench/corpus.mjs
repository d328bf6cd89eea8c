// Generates the benchmark corpus: FILES files × SECRETS_PER_FILE Secrets × KEYS values each.
import crypto from 'node:crypto'
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

export function writeCorpus(dir, {files = 200, secretsPerFile = 10, keys = 8, valueBytes = 48} = {}) {
  mkdirSync(dir, {recursive: true})
  for (let f = 0; f < files; f++) {
    const docs = []
    for (let s = 0; s < secretsPerFile; s++) {
      const lines = [
        '# generated for the kseal benchmark',
        'apiVersion: v1',
        'kind: Secret',
        'metadata:',
        `  name: app-${f}-${s}`,
        `  namespace: team-${f % 17}`,
        '  labels:',
        '    app.kubernetes.io/part-of: bench',
        'type: Opaque',
        'data:',
      ]
      for (let k = 0; k < keys; k++) lines.push(`  key-${k}: ${crypto.randomBytes(valueBytes).toString('base64')}`)
      docs.push(lines.join('\n') + '\n')
    }
    writeFileSync(path.join(dir, `secrets-${String(f).padStart(3, '0')}.yaml`), docs.join('---\n'))
  }
  return {files, secrets: files * secretsPerFile, values: files * secretsPerFile * keys}
}
