import { afterAll, describe, expect, it } from 'vitest'
import type { Kernel, KernelOptions } from '@hutch/sandbox'
import { closeTestSandboxes, testSandbox } from '../../../test/support/sandbox.ts'

/**
 * Kernels started ahead of their user (a session service's standby): modules preloaded before
 * the first cell, and `adopt` giving the kernel its user's limits, files and saved state once.
 */
const sandbox = () => testSandbox('bubblewrap')

const opened: Kernel[] = []
async function open(options: KernelOptions): Promise<Kernel> {
  const kernel = await (await sandbox()).openKernel(options)
  opened.push(kernel)
  return kernel
}

afterAll(async () => {
  for (const kernel of opened) await kernel.close()
  await closeTestSandboxes()
})

describe('kernel preload and adopt', () => {
  it('preloads modules into sys.modules only, and reports those that fail', async () => {
    const kernel = await open({ language: 'python', preload: ['json', 'no_such_module_here'] })
    expect(kernel.preloaded?.loaded).toEqual(['json'])
    expect(kernel.preloaded?.failed.map((entry) => entry.name)).toEqual(['no_such_module_here'])
    const cell = await kernel.execute(
      "import sys\nprint('json' in sys.modules, 'json' in globals())",
    )
    expect(cell.stdout).toBe('True False\n')
    expect(cell.executionCount).toBe(1)
  })

  it('refuses preloads that are not module names, or for other languages', async () => {
    const box = await sandbox()
    await expect(box.openKernel({ language: 'python', preload: ['os; import x'] })).rejects.toThrow(
      /not a module name/,
    )
    await expect(box.openKernel({ language: 'bash', preload: ['json'] })).rejects.toThrow(
      /only python kernels preload/,
    )
  })

  it('adopts once: per-cell limits, files and a saved state, as if given at the start', async () => {
    const box = await sandbox()
    const source = await open({ language: 'python' })
    await source.execute('def twice(x):\n    return 2 * x\nkept = twice(21)')
    const snapshot = await source.snapshot()
    expect(snapshot.state).toBeInstanceOf(Uint8Array)

    const kernel = await open({ language: 'python', preload: ['json'] })
    const limits = box.resolveLimits({ wallTimeMs: 500, outputBytes: 4096 })
    await kernel.adopt({
      limits,
      files: [{ path: 'data/in.txt', content: 'hello' }],
      ...(snapshot.state === undefined ? {} : { restoreState: snapshot.state }),
    })
    expect(kernel.limits.wallTimeMs).toBe(500)
    expect(kernel.restored?.restored).toEqual(expect.arrayContaining(['twice', 'kept']))
    const cell = await kernel.execute("print(kept, twice(2), open('data/in.txt').read())")
    expect(cell.stdout).toBe('42 4 hello\n')
    // The adopted per-cell limit holds: this cell passes 500 ms.
    const slow = await kernel.execute('import time\ntime.sleep(5)')
    expect(slow.status).toBe('timeout')

    await expect(kernel.adopt({})).rejects.toThrow(/was used already/)
  })

  it('refuses to adopt a kernel that ran a cell, or whose fixed limits differ', async () => {
    const box = await sandbox()
    const used = await open({ language: 'python' })
    await used.execute('secret = 1')
    await expect(used.adopt({})).rejects.toThrow(/was used already/)

    const fresh = await open({ language: 'python' })
    const bigger = box.resolveLimits({ memoryBytes: fresh.limits.memoryBytes * 2 })
    await expect(fresh.adopt({ limits: bigger })).rejects.toThrow(/other memory/)
    // A refused adoption leaves the kernel as it was.
    await fresh.adopt({ limits: box.resolveLimits({ wallTimeMs: 1000 }) })
    expect(fresh.limits.wallTimeMs).toBe(1000)
  })

  it('reports adopted files as inputs, not as outputs of the first cell', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.adopt({ files: [{ path: 'given.txt', content: 'in' }] })
    const first = await kernel.execute("print(open('given.txt').read())")
    expect(first.stdout).toBe('in\n')
    expect(first.outputFiles).toEqual([])
  })

  it('reports a file written between cells by the next cell', async () => {
    const kernel = await open({ language: 'python' })
    const first = await kernel.execute(
      "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 1; echo late > late.txt'])",
    )
    expect(first.outputFiles).toEqual([])
    // Reported once, by the cell during or after which it appeared: not lost between cells.
    const reported: string[] = []
    const deadline = Date.now() + 20_000
    for (;;) {
      const seen = await kernel.execute("import os\nprint(os.path.exists('late.txt'))")
      reported.push(...seen.outputFiles.map((file) => file.path))
      if (seen.stdout === 'True\n') break
      if (Date.now() > deadline) throw new Error('late.txt never appeared')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    reported.push(...(await kernel.execute('pass')).outputFiles.map((file) => file.path))
    expect(reported).toEqual(['late.txt'])
  })
})
