import type { RunOptions, RunResult, SandboxOptions } from '@hutch/sandbox'
import { Sandbox } from '@hutch/sandbox'

/** Backends the contract suite runs against, by name: plain bubblewrap and the fork-server fast path. */
export const testBackends = ['bubblewrap', 'forkserver'] as const
export type TestBackend = (typeof testBackends)[number]

/**
 * The backend of `run`, `python` and `bash`: `HUTCH_TEST_BACKEND`, bubblewrap by default.
 * `scripts/test` runs the escape suites a second time with `forkserver`, unchanged.
 */
export const defaultTestBackend: TestBackend =
  process.env['HUTCH_TEST_BACKEND'] === 'forkserver' ? 'forkserver' : 'bubblewrap'

const sandboxes = new Map<string, Promise<Sandbox>>()

/**
 * A sandbox of the named backend, shared by the tests of one file. Real bubblewrap, real
 * cgroups, real seccomp: nothing here is mocked.
 */
export function testSandbox(
  backend: TestBackend = defaultTestBackend,
  options: SandboxOptions = {},
): Promise<Sandbox> {
  const key = `${backend}:${JSON.stringify(options)}`
  let sandbox = sandboxes.get(key)
  if (sandbox === undefined) {
    sandbox = Sandbox.create(backend === 'forkserver' ? { fastPath: true, ...options } : options)
    sandboxes.set(key, sandbox)
  }
  return sandbox
}

/** Runs one program in the default test sandbox. */
export async function run(options: RunOptions): Promise<RunResult> {
  return (await testSandbox()).run(options)
}

/** Runs Python code in the default test sandbox. */
export async function python(code: string, options: Partial<RunOptions> = {}): Promise<RunResult> {
  return run({ language: 'python', code, ...options })
}

/** Runs a bash script in the default test sandbox. */
export async function bash(code: string, options: Partial<RunOptions> = {}): Promise<RunResult> {
  return run({ language: 'bash', code, ...options })
}

/** Closes every sandbox the tests of this file made, waiting for their runs' cleanup. */
export async function closeTestSandboxes(): Promise<void> {
  const all = [...sandboxes.values()]
  sandboxes.clear()
  for (const sandbox of all) await (await sandbox).close()
}
