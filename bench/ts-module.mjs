/**
 * The test servers the benchmarks drive are TypeScript modules in test/support/ that import their
 * neighbours. Bundle one in memory with esbuild (no files written), its package imports left as
 * imports and pointed at this project's node_modules, so it can be imported from a data: URL.
 */
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** JavaScript source of test/support/<name>.ts and the local files it imports. */
export async function bundleTestSupport(name) {
  const esbuild = await import('esbuild')
  const built = await esbuild.build({
    entryPoints: [path.join(ROOT, 'test', 'support', `${name}.ts`)],
    bundle: true,
    plugins: [
      {
        name: 'project-packages',
        setup(build) {
          // Package imports stay imports, resolved to files in this project's node_modules.
          build.onResolve({filter: /^[^./]/}, (args) => ({
            path: args.path.startsWith('node:') ? args.path : import.meta.resolve(args.path),
            external: true,
          }))
        },
      },
    ],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  })
  return built.outputFiles[0].text
}

/** A data: URL that imports the bundled module. */
export async function testSupportUrl(name) {
  return `data:text/javascript;base64,${Buffer.from(await bundleTestSupport(name)).toString('base64')}`
}
