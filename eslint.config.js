/**
 * ESLint: the import direction of docs/ARCHITECTURE.md, plus typescript-eslint's recommended checks.
 * Formatting is prettier's job (`npm run lint` runs both; `npm run format` fixes the format).
 *
 * The direction is one table, MAY_IMPORT: for each folder, the folders of ours its files may import.
 * import-x's no-restricted-paths enforces it on resolved paths (static and dynamic imports), so
 * `../x.js` and `../../src/x.js` are judged by where they land, not by how they are spelled.
 * test/lint.test.ts feeds it violating and legal imports.
 */
import tseslint from 'typescript-eslint'
import importX from 'eslint-plugin-import-x'
import {createTypeScriptImportResolver} from 'eslint-import-resolver-typescript'

// The layers that hold the work shared by the CLI and the controller: formats, kseal's SealedSecret
// format, one Secret's encrypt/open, .kseal.yaml, the ExternalSecret library.
const DOMAIN = ['src/formats', 'src/sealed', 'src/secret', 'src/config', 'src/external']
// What every layer above the envelope may use.
const BASE = ['src/manifest', 'src/envelope', 'src/keyring', 'keys', 'src/kube', 'src/core']

/** For each folder, the folders of ours that its files may import (a folder may always import itself). */
export const MAY_IMPORT = {
  'src/core': [],
  keys: ['src/core'],
  'src/keyring': ['keys', 'src/core'],
  'src/envelope': ['src/keyring', 'keys', 'src/core'],
  'src/manifest': ['src/envelope', 'src/keyring', 'keys', 'src/core'],
  'src/kube': ['src/core'],
  ...Object.fromEntries(DOMAIN.map((d) => [d, [...DOMAIN, ...BASE]])),
  'src/client': [...DOMAIN, ...BASE],
  'src/controller': [...DOMAIN, ...BASE],
  'src/ops': ['src/client', ...DOMAIN, ...BASE],
  // The CLI's frame: the oclif base command, and the fast path with the hot commands' bodies (hot.ts).
  'src/cli': ['src/ops', 'src/client', ...DOMAIN, ...BASE],
  commands: ['src/ops', 'src/cli', 'src/client', ...DOMAIN, ...BASE.filter((f) => f !== 'keys')],
  // The one command that starts the in-cluster controller.
  'commands/controller.ts': ['src/controller', 'src/ops', 'src/cli', 'src/client', ...DOMAIN, ...BASE.filter((f) => f !== 'keys')],
}

// Every folder of ours an import can land in.
const OURS = [...new Set([...Object.keys(MAY_IMPORT).filter((f) => !f.endsWith('.ts')), 'test', 'bench', 'scripts', 'bin'])]

function zones() {
  return Object.entries(MAY_IMPORT).map(([folder, allowed]) => {
    const from = OURS.filter((o) => o !== folder && !allowed.includes(o) && !(folder.endsWith('.ts') && folder.startsWith(`${o}/`)))
    // commands/controller.ts has its own entry: the commands/ zone leaves it out.
    const target = folder === 'commands' ? ['commands/!(controller).ts', 'commands/*/**'] : [folder]
    return {
      target: target.map((t) => `./${t}`),
      from: from.map((f) => `./${f}`),
      message: `${folder} may import only ${allowed.length ? allowed.join(', ') : 'nothing of ours'} (docs/ARCHITECTURE.md).`,
    }
  })
}

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'test/fixtures/', 'coverage/']},
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    plugins: {'import-x': importX},
    settings: {'import-x/resolver-next': [createTypeScriptImportResolver({project: './tsconfig.json'})]},
    rules: {
      'import-x/no-restricted-paths': ['error', {basePath: import.meta.dirname, zones: zones()}],
      // `_name` marks a value kept on purpose (a destructured field dropped, a required parameter unused).
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'}],
    },
  },
  {
    // The build bundles client-node through src/kube/client-node.ts, keeping only what it names;
    // a value imported from the package anywhere else would bring the whole package back.
    files: ['src/**/*.ts', 'keys/**/*.ts', 'commands/**/*.ts'],
    ignores: ['src/kube/client-node.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@kubernetes/client-node',
              allowTypeImports: true,
              message: 'import client-node values through src/kube/client-node.ts (loadK8s), which the build bundles tree-shaken.',
            },
          ],
        },
      ],
    },
  },
)
