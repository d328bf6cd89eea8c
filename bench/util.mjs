/** Small helpers the benchmark scripts share. */
import {existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {parseAllDocuments} from 'yaml'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export const mb = (b) => `${Math.round(b / 1048576)} MB`

/** A process's peak resident set (VmHWM) in bytes, when /proc tells. */
export function peakRssBytes(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** A numeric command-line option (`--name N`), or the fallback. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

/** A bench's `kseal controller` command line: the CLI, its kubeconfig, key namespace and listen address, then `rest`. */
export function controllerArgs(bin, kubeconfig, keyNamespace, listen, rest) {
  return [bin, 'controller', '--kubeconfig', kubeconfig, '--key-namespace', keyNamespace, '--listen', listen, ...rest]
}

/** A Kubernetes memory quantity ("384Mi", "1G", "500000000") in bytes. */
export function memoryQuantity(q) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q).trim())
  if (!m) throw new Error(`not a memory quantity: ${q}`)
  const unit = {Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12}[m[2]] ?? 1
  return Math.round(Number(m[1]) * unit)
}

/**
 * Runs the controller as deploy/deployment.yaml runs it, as far as memory goes: in a memory cgroup
 * with the controller container's `resources.limits.memory`. Node sizes its V8 heap from that limit
 * (on this 24 GB machine it would otherwise allow itself a 4 GB heap, and collect garbage that
 * lazily), so this is the process a cluster runs. Where no cgroup can be made (not root, no
 * cgroupfs), the controller runs without one and `note` says so.
 * Returns {wrap(cmd, args) → [cmd, args], limitBytes, note, close()}.
 */
export function deploymentMemoryLimit(root, {off = false} = {}) {
  const docs = parseAllDocuments(readFileSync(path.join(root, 'deploy/deployment.yaml'), 'utf8')).map((d) => d.toJS())
  const deployment = docs.find((d) => d?.kind === 'Deployment')
  const container = deployment?.spec?.template?.spec?.containers?.find((c) => c.name === 'controller')
  const limitBytes = memoryQuantity(container?.resources?.limits?.memory)
  const name = `kseal-bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const tries = [
    // cgroup v1's memory hierarchy, or v2's unified one.
    {dir: '/sys/fs/cgroup/memory', file: 'memory.limit_in_bytes'},
    {dir: '/sys/fs/cgroup', file: 'memory.max'},
  ]
  const reasons = []
  for (const t of off ? [] : tries) {
    if (!existsSync(path.join(t.dir, 'cgroup.procs'))) continue
    const dir = path.join(t.dir, name)
    try {
      mkdirSync(dir)
      writeFileSync(path.join(dir, t.file), String(limitBytes))
    } catch (e) {
      reasons.push(`${dir}: ${e.code ?? e.message}`)
      try {
        rmdirSync(dir)
      } catch {
        // not made
      }
      continue
    }
    return {
      limitBytes,
      note: `the controller ran in a memory cgroup limited to ${container.resources.limits.memory}, the Deployment's limit`,
      wrap: (cmd, args) => ['/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec "$@"`, 'sh', cmd, ...args]],
      close: () => {
        try {
          rmdirSync(dir)
        } catch {
          // still has a process (it is killed with the bench); the kernel frees an empty cgroup's memory
        }
      },
    }
  }
  const why = off ? 'as --no-memory-limit asks' : `no memory cgroup could be made here (${reasons.join('; ') || 'no cgroupfs'})`
  return {
    limitBytes,
    note: `the controller ran WITHOUT the Deployment's memory limit (${container.resources.limits.memory}), ${why}, so Node sized its heap from the whole machine`,
    wrap: (cmd, args) => [cmd, args],
    close: () => undefined,
  }
}
