// The fast path bundle's CommonJS interop, made plain where that changes nothing (scripts/build.mjs).
/**
 * esbuild reaches a CommonJS module (node:crypto, yaml's dist) from ESM through `__toESM(mod, 1)`,
 * which copies every export onto a new object as a getter — at start-up, each time a module imports
 * one (measured: about half a millisecond of every fast-path run). Where the bundle reads only
 * `.default` from such a binding, `{default: mod}` is the same; where it reads only named exports,
 * `mod` itself is. Any other use keeps the interop.
 */
export function plainInterop(code) {
  return code.replace(
    /\b(import_[A-Za-z0-9_$]+)=__toESM\(((?:require\("[^"]+"\))|(?:require_[A-Za-z0-9_$]+\(\))),1\)/g,
    (all, name, mod) => {
      // Every mention but the assignment itself and its `var a,b,…` declaration.
      const declared = (i) => /^var [\w$,]*$/.test(code.slice(code.lastIndexOf('var ', i), i))
      const uses = [
        ...code.matchAll(new RegExp(`(?<![\\w$.])${name.replace(/\$/g, '\\$')}(?![\\w$])(\\.[A-Za-z_$][\\w$]*|=__toESM)?`, 'g')),
      ].filter((u) => u[1] !== '=__toESM' && !declared(u.index))
      if (uses.some((u) => u[1] === undefined)) return all
      if (uses.every((u) => u[1] === '.default')) return `${name}={default:${mod}}`
      if (uses.every((u) => u[1] !== '.default' && u[1] !== '.__esModule')) return `${name}=${mod}`
      return all
    },
  )
}
