import { afterAll, describe, expect, it } from 'vitest'
import { Sandbox, SandboxError } from '@hutch/sandbox'
import { waitUntil } from '../../../test/support/processes.ts'

// What forking adds to the sandbox contract (issue 4): the contract and escape suites run on the
// fast path unchanged; these are the properties a fork server could break and bubblewrap cannot.
describe('fork server fast path', () => {
  const sandboxes: Sandbox[] = []
  const fastSandbox = async (options: Parameters<typeof Sandbox.create>[0] = {}) => {
    const sandbox = await Sandbox.create({ fastPath: true, ...options })
    sandboxes.push(sandbox)
    return sandbox
  }
  afterAll(async () => {
    for (const sandbox of sandboxes) await sandbox.close()
  })

  it('runs python in a forked child of the fork server, with its libraries already imported', async () => {
    const sandbox = await fastSandbox()
    // pandas does not import pyplot: only the fork server's preloads put it there.
    const result = await sandbox.run({
      language: 'python',
      code: 'import os, pandas, sys; print("matplotlib.pyplot" in sys.modules, "numpy" in sys.modules, os.nice(0))',
    })
    // The run's own process runs at the ordinary priority.
    expect(result).toMatchObject({ status: 'ok', stdout: 'True True 0\n' })
    expect(sandbox.fastPath?.python.stats.started).toBe(1)
    expect(sandbox.fastPath?.['python-stdlib'].stats.started).toBe(0)
  })

  it('runs code that imports only the standard library on the fork server with nothing preloaded', async () => {
    const sandbox = await fastSandbox()
    const plain = await sandbox.run({
      language: 'python',
      code: 'import json, sys\nprint(json.dumps(sorted(m for m in ("numpy", "pandas") if m in sys.modules)))',
    })
    expect(plain).toMatchObject({ status: 'ok', stdout: '[]\n' })
    expect(sandbox.fastPath?.['python-stdlib'].stats.started).toBe(1)
    // Given files it might import, or an import it cannot see, a run takes the preloaded one.
    const withFile = await sandbox.run({
      language: 'python',
      code: 'import helper\nprint(helper.X)',
      files: [{ path: 'helper.py', content: 'X = 7\n' }],
    })
    expect(withFile).toMatchObject({ status: 'ok', stdout: '7\n' })
    const dynamic = await sandbox.run({
      language: 'python',
      code: 'import sys\nm = __import__("json")\nprint("pandas" in sys.modules)',
    })
    expect(dynamic).toMatchObject({ status: 'ok', stdout: 'True\n' })
    expect(sandbox.fastPath?.python.stats.started).toBe(1)
    expect(sandbox.fastPath?.['python-stdlib'].stats.started).toBe(1)
  })

  it('gives every run its own random numbers: random, os.urandom, numpy, uuid', async () => {
    const sandbox = await fastSandbox()
    const code = [
      'import os, random, uuid, numpy',
      'print(random.random(), random.getrandbits(64), os.urandom(8).hex(),',
      '      numpy.random.rand(), numpy.random.default_rng().random(), uuid.uuid4())',
    ].join('\n')
    const runs = await Promise.all(
      Array.from({ length: 6 }, () => sandbox.run({ language: 'python', code })),
    )
    for (const run of runs) expect(run.status, run.stderr).toBe('ok')
    const columns = runs.map((run) => run.stdout.trim().split(' '))
    for (let column = 0; column < 6; column++) {
      const values = new Set(columns.map((values) => values[column]))
      expect(values.size, `column ${column}: ${[...values].join(', ')}`).toBe(runs.length)
    }
  })

  it('ends a python run when the program ends, killing what it left behind before reading its files', async () => {
    const sandbox = await fastSandbox()
    const started = performance.now()
    const result = await sandbox.run({
      language: 'python',
      code: [
        'import subprocess, sys',
        // Holds stdout open, and writes a file after the program has ended.
        "subprocess.Popen(['bash', '-c', 'sleep 0.5; echo late > late.txt; sleep 20'])",
        "open('early.txt', 'w').write('early')",
        "print('bye'); sys.exit(3)",
      ].join('\n'),
    })
    expect(result).toMatchObject({ status: 'error', exitCode: 3, stdout: 'bye\n' })
    expect(result.outputFiles.map((file) => file.path)).toEqual(['early.txt'])
    // Not the 20 s of the process left behind: it was killed with the run.
    expect(performance.now() - started).toBeLessThan(15_000)
  })

  it('replaces a fork server that died, and discards the sandboxes it had prepared', async () => {
    const sandbox = await fastSandbox()
    const backend = sandbox.fastPath?.python
    const slot = await sandbox.prepare()
    const server = backend?.serverOf(slot)
    expect(server?.hostPid).toBeGreaterThan(0)
    process.kill(server?.hostPid ?? 0, 'SIGKILL')
    await waitUntil(() => slot.healthy?.() === false, 10_000)
    await expect(sandbox.run({ language: 'python', code: 'print(1)', slot })).rejects.toThrow(
      SandboxError,
    )
    const after = await sandbox.run({ language: 'python', code: 'import numpy\nprint("again")' })
    expect(after).toMatchObject({ status: 'ok', stdout: 'again\n' })
    expect(backend?.stats).toMatchObject({ started: 2, crashed: 1 })
  })

  it('recycles a fork server after a number of runs, and stops the old one', async () => {
    const sandbox = await fastSandbox({ fastPath: { maxRunsPerServer: 2 } })
    for (let i = 0; i < 5; i++) {
      const result = await sandbox.run({ language: 'bash', code: 'echo $$' })
      expect(result).toMatchObject({ status: 'ok', stdout: '2\n' })
    }
    const backend = sandbox.fastPath?.bash
    expect(backend?.stats.started).toBe(3)
    expect(backend?.stats.recycled).toBe(2)
    await waitUntil(() => backend?.servers === 1, 10_000)
  })

  it('recycles a fork server after its age', async () => {
    const sandbox = await fastSandbox({ fastPath: { maxServerAgeMs: 1 } })
    await sandbox.run({ language: 'bash', code: 'true' })
    await new Promise((resolve) => setTimeout(resolve, 10))
    await sandbox.run({ language: 'bash', code: 'true' })
    expect(sandbox.fastPath?.bash.stats.started).toBe(2)
  })
})
