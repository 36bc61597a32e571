import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** The top-level module names of an interpreter's standard library (`sys.stdlib_module_names`). */
export async function standardLibraryModules(pythonPath: string): Promise<ReadonlySet<string>> {
  const { stdout } = await execFileAsync(
    pythonPath,
    ['-I', '-c', 'import sys; print("\\n".join(sorted(sys.stdlib_module_names)))'],
    { timeout: 30_000, env: {} },
  )
  return new Set(stdout.split('\n').filter((name) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)))
}

/** Ways of importing a module that the statements below do not show. */
const dynamicImport = /__import__|importlib|\bexec\s*\(|\beval\s*\(|runpy|pkgutil|__builtins__/

/** `import a.b as c, d` (the names up to the end of the statement) or `from a.b import ...`. */
const importStatement = /\bimport\s+([^;\n#]+)|\bfrom\s+(\.*[\w.]*)\s+import\b/g

/**
 * Whether Python source imports nothing but the standard library, judged from its text: every
 * `import` and `from ... import` names a standard module, and nothing imports by other means.
 * Conservative: the words in a string or a comment count as well, a relative import or a name it
 * cannot read counts as not standard. A run for which this holds can take a fork server with
 * nothing preloaded, cheaper to fork than one with numpy, pandas and matplotlib imported; when it
 * is wrong the run still works, slower.
 */
export function importsOnlyStandardLibrary(code: string, stdlib: ReadonlySet<string>): boolean {
  if (dynamicImport.test(code)) return false
  for (const match of code.matchAll(importStatement)) {
    const [, imported, from] = match
    const roots =
      from !== undefined
        ? [from]
        : (imported ?? '').split(',').map((part) => part.trim().split(/\s+/)[0] ?? '')
    for (const name of roots) {
      const root = name.split('.')[0] ?? ''
      if (root === '' || !stdlib.has(root)) return false
    }
  }
  return true
}
