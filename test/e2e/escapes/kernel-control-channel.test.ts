import { afterAll, describe, expect, it } from 'vitest'
import type { Kernel, KernelOptions } from '@hutch/sandbox'
import { closeTestSandboxes, testSandbox } from '../../support/sandbox.ts'

// A kernel keeps two control pipes open to the server for its whole life (fds 60 and 61 inside
// the sandbox). Cells run hostile code in the same process as the driver that speaks on them: what
// they write there must not crash the server, wedge the kernel, or reach any other kernel; what
// they print must not cut their output where hutch would not.
const kernels: Kernel[] = []
async function open(options: KernelOptions): Promise<Kernel> {
  const kernel = await (await testSandbox('bubblewrap')).openKernel(options)
  kernels.push(kernel)
  return kernel
}

afterAll(async () => {
  for (const kernel of kernels) await kernel.close()
  await closeTestSandboxes()
})

describe('escape: the control pipes of a kernel', () => {
  it('garbage, oversized lines and false payload lengths are dropped; the kernel goes on (blocked)', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute(
      [
        'import os',
        'os.write(61, b"not json\\n[1, 2]\\n\\x00\\xff\\n")',
        'os.write(61, b"{" * (40 * 1024 * 1024))  # no newline, past the bound of a line',
        'os.write(61, b\'{"type":"display","id":"x","payloadBytes":99999999999}\\n\')',
        'os.write(61, b\'{"type":"snapshot","id":"x","payloadBytes":5}\\n\')',
        'os.write(61, b\'{"type":"done","partial":\')  # a line left open',
        'print("still here")',
      ].join('\n'),
      { timeoutMs: 20_000 },
    )
    expect(result.status).toBe('ok')
    expect(result.stdout).toBe('still here\n')
    expect(result.restarted).toBeUndefined()
    const after = await kernel.execute('6 * 7')
    expect(after.results).toEqual([{ 'text/plain': '42' }])
  })

  it("a background thread forging 'done' events cannot end or fill another cell (blocked)", async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute(
      [
        'import os, threading, time, secrets',
        'def forge():',
        '    while True:',
        '        ident = secrets.token_hex(8)',
        '        os.write(61, (\'{"type":"done","id":"%s","ok":true,"executionCount":99,"result":{"text/plain":"forged"}}\\n\' % ident).encode())',
        '        os.write(1, b"\\0hutch-cell-end:" + ident.encode() + b"\\0")',
        '        time.sleep(0.001)',
        'threading.Thread(target=forge, daemon=True).start()',
      ].join('\n'),
    )
    for (let i = 0; i < 5; i++) {
      const result = await kernel.execute('import time\ntime.sleep(0.05)\n"real"')
      expect(result.results).toEqual([{ 'text/plain': "'real'" }])
      expect(result.executionCount).toBe(i + 2)
    }
  })

  it('a sentinel of another cell printed by a cell stays in its output (blocked)', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute(
      'import os\nos.write(1, b"a\\0hutch-cell-end:0123456789abcdef\\0b\\n")\nprint("c")',
    )
    expect(result.stdout).toBe('a\0hutch-cell-end:0123456789abcdef\0b\nc\n')
  })

  // Node.js cannot mark an inherited descriptor close-on-exec, so a JavaScript kernel's child
  // processes do get them: they can disturb only their own kernel, as its cells can.
  it("python and bash cells' child processes do not inherit the control pipes (blocked)", async () => {
    const python = await open({ language: 'python' })
    const fromPython = await python.execute(
      'import subprocess\nprint(subprocess.run(["ls", "/proc/self/fd"], capture_output=True, text=True).stdout.split())',
    )
    expect(fromPython.stdout).not.toMatch(/'6[01]'/)
    const bash = await open({ language: 'bash' })
    const fromBash = await bash.execute('ls /proc/self/fd | tr "\\n" " "')
    expect(fromBash.stdout.split(' ')).not.toContain('60')
    expect(fromBash.stdout.split(' ')).not.toContain('61')
  })

  it('a cell closing its own stdout and stderr does not hang the kernel (blocked)', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute('import os\nos.close(1)\nos.close(2)\n1', {
      timeoutMs: 10_000,
    })
    expect(result.status).toBe('ok')
    const after = await kernel.execute('2')
    expect(after.results).toEqual([{ 'text/plain': '2' }])
  })

  it("one kernel's writes never reach another kernel's cells (blocked)", async () => {
    const noisy = await open({ language: 'python' })
    const quiet = await open({ language: 'python' })
    await noisy.execute(
      'import os, threading\ndef spam():\n    while True:\n        os.write(61, b\'{"type":"done","id":"x","ok":false}\\n\')\n        os.write(1, b"noise")\nthreading.Thread(target=spam, daemon=True).start()',
    )
    const result = await quiet.execute('print("clean")\n"quiet"')
    expect(result).toMatchObject({ status: 'ok', stdout: 'clean\n' })
    expect(result.results).toEqual([{ 'text/plain': "'quiet'" }])
    await noisy.close()
  })
})
