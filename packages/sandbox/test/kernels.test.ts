import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Kernel, KernelOptions } from '@hutch/sandbox'
import { defaultSandboxStateDir } from '@hutch/sandbox'
import { closeTestSandboxes, testSandbox } from '../../../test/support/sandbox.ts'

/**
 * Stateful kernels in real bubblewrap sandboxes: state kept across cells, rich results,
 * interrupts and deaths survived, freezing, snapshots, isolation and cleanup.
 */
const sandbox = () =>
  testSandbox('bubblewrap', { kernelTimings: { interruptGraceMs: 1000, killGraceMs: 1000 } })

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

/** The directories of a kernel's cgroup, one per hierarchy. */
function cgroupDirs(id: string): string[] {
  const found = spawnSync(
    'find',
    ['/sys/fs/cgroup', '-maxdepth', '4', '-type', 'd', '-name', `run-${id}`],
    {
      encoding: 'utf8',
    },
  )
  return found.stdout.split('\n').filter((line) => line !== '')
}

function cpuUsageNs(id: string): number {
  for (const dir of cgroupDirs(id)) {
    const v1 = path.join(dir, 'cpuacct.usage')
    if (fs.existsSync(v1)) return Number(fs.readFileSync(v1, 'utf8'))
    const v2 = path.join(dir, 'cpu.stat')
    if (fs.existsSync(v2)) {
      const usec = /usage_usec (\d+)/.exec(fs.readFileSync(v2, 'utf8'))?.[1]
      return Number(usec) * 1000
    }
  }
  throw new Error(`no cpu counter for ${id}`)
}

/** Width and height of a PNG, from its IHDR chunk, after checking the signature. */
function pngSize(base64: string): { width: number; height: number } {
  const bytes = Buffer.from(base64, 'base64')
  expect(bytes.subarray(0, 8)).toEqual(
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  )
  expect(bytes.subarray(12, 16).toString('ascii')).toBe('IHDR')
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) }
}

describe('python kernel', () => {
  it('keeps variables across cells and shows the last expression like Jupyter', async () => {
    const kernel = await open({ language: 'python' })
    const first = await kernel.execute('x = 41\nprint("set")')
    expect(first).toMatchObject({ status: 'ok', stdout: 'set\n', executionCount: 1, results: [] })
    const second = await kernel.execute('x + 1')
    expect(second).toMatchObject({ status: 'ok', executionCount: 2 })
    expect(second.results).toEqual([{ 'text/plain': '42' }])
  })

  it('returns every figure as a PNG that decodes, and DataFrames as text and HTML', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute(
      [
        'import matplotlib.pyplot as plt, pandas as pd',
        'plt.figure(figsize=(4, 3)); plt.plot([1, 3, 2])',
        'plt.figure(figsize=(2, 2)); plt.bar([1, 2], [3, 4])',
        'from IPython.display import display',
        'display(pd.DataFrame({"a": [1, 2]}))',
        'pd.DataFrame({"city": ["Oslo", "Lima"], "n": [3, 4]})',
      ].join('\n'),
    )
    expect(result.status).toBe('ok')
    const images = result.results.filter((bundle) => typeof bundle['image/png'] === 'string')
    expect(images).toHaveLength(2)
    for (const image of images) {
      const size = pngSize(image['image/png'] as string)
      expect(size.width).toBeGreaterThan(50)
      expect(size.height).toBeGreaterThan(50)
    }
    const decoded = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        'import io,sys; from PIL import Image; im = Image.open(io.BytesIO(sys.stdin.buffer.read())); im.load(); print(im.size[0] > 0)',
      ],
      { input: Buffer.from(images[0]?.['image/png'] as string, 'base64'), encoding: 'utf8' },
    )
    expect(decoded.stdout.trim()).toBe('True')
    // display() comes where it was called, the last expression comes last.
    const tables = result.results.filter((bundle) => typeof bundle['text/html'] === 'string')
    expect(tables).toHaveLength(2)
    const last = result.results[result.results.length - 1]
    expect(last?.['text/html']).toContain('<table')
    expect(last?.['text/html']).toContain('Oslo')
    expect(last?.['text/plain']).toContain('Lima')
  })

  it('parses errors into name, value, line and hint', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute('a = 1\nprint(undefined_name)')
    expect(result.status).toBe('error')
    expect(result.error).toMatchObject({ name: 'NameError', line: 2 })
    expect(result.error?.value).toContain('undefined_name')
    expect(result.stderr).toContain('NameError')
  })

  it('runs shell escapes and magics; exit() leaves the kernel running', async () => {
    const kernel = await open({ language: 'python' })
    const escaped = await kernel.execute('!echo from-escape\n%time total = sum(range(10))')
    expect(escaped.stdout).toMatch(/^from-escape\n/)
    const exited = await kernel.execute('exit()')
    expect(exited.status).toBe('ok')
    expect(exited.stderr).toContain('does not end')
    const after = await kernel.execute('total')
    expect(after.results).toEqual([{ 'text/plain': '45' }])
  })

  it('attributes the output of subprocesses to their cell', async () => {
    const kernel = await open({ language: 'python' })
    const first = await kernel.execute(
      'import os\nos.system("echo from-shell; echo err-shell >&2")\nprint("after")',
    )
    expect(first.stdout).toBe('from-shell\nafter\n')
    expect(first.stderr).toBe('err-shell\n')
    const second = await kernel.execute('print("next")')
    expect(second.stdout).toBe('next\n')
  })

  it('interrupts a cell past its timeout and keeps the variables', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute('kept = [1, 2, 3]')
    const slow = await kernel.execute('import time\nwhile True:\n    time.sleep(0.05)', {
      timeoutMs: 1000,
    })
    expect(slow.status).toBe('timeout')
    expect(slow.reason).toContain('wall time')
    expect(slow.error?.name).toBe('KeyboardInterrupt')
    expect(slow.restarted).toBeUndefined()
    const after = await kernel.execute('sum(kept)')
    expect(after.results).toEqual([{ 'text/plain': '6' }])
  })

  it('kills a cell that ignores the interrupt and restarts the interpreter', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute('kept = 1')
    // Interrupted only once it ignores SIGINT, however slow the host.
    let armed!: () => void
    const ignoring = new Promise<void>((resolve) => (armed = resolve))
    const running = kernel.execute(
      'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint("armed", flush=True)\nwhile True:\n    time.sleep(0.05)',
      { onStdout: (chunk) => chunk.toString().includes('armed') && armed() },
    )
    await ignoring
    await kernel.interrupt()
    const stubborn = await running
    expect(stubborn.status).toBe('killed')
    expect(stubborn.restarted?.reason).toContain('did not stop')
    const after = await kernel.execute('"kept" in globals()')
    expect(after.status).toBe('ok')
    expect(after.results).toEqual([{ 'text/plain': 'False' }])
    expect(after.executionCount).toBe(1)
  })

  it('survives a cell that exits the interpreter', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute('x = 1')
    const died = await kernel.execute('import os\nos._exit(3)')
    expect(died.restarted?.reason).toContain('exited with code 3')
    expect(died.status).toBe('error')
    const after = await kernel.execute('1 + 1')
    expect(after).toMatchObject({ status: 'ok', executionCount: 1 })
    expect(after.results).toEqual([{ 'text/plain': '2' }])
  })

  it('survives a cell that runs out of memory', async () => {
    const kernel = await open({ language: 'python', limits: { memoryBytes: 256 * 1024 * 1024 } })
    const died = await kernel.execute('hog = bytearray(512 * 1024 * 1024)')
    expect(died.status).toBe('memory_limit')
    expect(died.restarted?.reason).toContain('memory')
    const after = await kernel.execute('2 + 2')
    expect(after.results).toEqual([{ 'text/plain': '4' }])
  })

  it('uses no CPU while frozen and runs again after a thaw', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute(
      'import threading\ndef spin():\n    while True:\n        pass\nthreading.Thread(target=spin, daemon=True).start()',
    )
    await kernel.freeze()
    expect(kernel.state).toBe('frozen')
    const before = cpuUsageNs(kernel.id)
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(cpuUsageNs(kernel.id) - before).toBe(0)
    await kernel.thaw()
    const thawedAt = cpuUsageNs(kernel.id)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(cpuUsageNs(kernel.id)).toBeGreaterThan(thawedAt)
    await kernel.freeze()
    // A cell thaws the kernel by itself.
    const result = await kernel.execute('"alive"')
    expect(result.results).toEqual([{ 'text/plain': "'alive'" }])
    expect(kernel.state).toBe('running')
  })

  it('saves a DataFrame and a function, and reports a generator and an open file as lost', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute(
      [
        'import pandas as pd',
        'df = pd.DataFrame({"n": range(10_000)})',
        'def total(extra):',
        '    return int(df["n"].sum()) + extra',
        'numbers = (i for i in range(3))',
        'handle = open("notes.txt", "w")',
        'class Stubborn:',
        '    def __reduce__(self):',
        '        raise TypeError("not today")',
        'stubborn = Stubborn()',
      ].join('\n'),
    )
    const snapshot = await kernel.snapshot()
    expect(snapshot.saved).toEqual(expect.arrayContaining(['df', 'total', 'pd']))
    expect(snapshot.lost.map((entry) => entry.name).sort()).toEqual([
      'handle',
      'numbers',
      'stubborn',
    ])
    expect(snapshot.lost.find((entry) => entry.name === 'stubborn')?.reason).toContain('not today')
    expect(snapshot.lost.find((entry) => entry.name === 'numbers')?.reason).toContain('generator')
    expect(snapshot.state).toBeInstanceOf(Uint8Array)

    const restored = await open({
      language: 'python',
      ...(snapshot.state === undefined ? {} : { restoreState: snapshot.state }),
    })
    expect(restored.restored?.restored).toEqual(expect.arrayContaining(['df', 'total', 'pd']))
    const result = await restored.execute('df2 = df.head(2)\n(total(1), len(df), pd.__name__)')
    expect(result.status).toBe('ok')
    expect(result.results).toEqual([{ 'text/plain': "(49995001, 10000, 'pandas')" }])
    // The restored function sees the live namespace, not a copy of the old one.
    const redefined = await restored.execute('df = pd.DataFrame({"n": [1]})\ntotal(0)')
    expect(redefined.results).toEqual([{ 'text/plain': '1' }])
  })
})

describe('kernel controls', () => {
  it('streams output and displays as the cell runs', async () => {
    const kernel = await open({ language: 'python' })
    const seen: string[] = []
    const result = await kernel.execute(
      'import sys, time\nprint("one", flush=True)\nsys.stderr.write("two\\n")\nfrom IPython.display import display, HTML\ndisplay(HTML("<i>3</i>"))\n4',
      {
        onStdout: (chunk) => seen.push(`out:${chunk.toString()}`),
        onStderr: (chunk) => seen.push(`err:${chunk.toString()}`),
        onDisplay: (bundle) => seen.push(`display:${String(bundle['text/html'])}`),
      },
    )
    // Chunks of one stream may come split; what matters is the order across them.
    const merged = seen.reduce<string[]>((all, entry) => {
      const kind = entry.slice(0, entry.indexOf(':') + 1)
      const last = all[all.length - 1]
      if (last?.startsWith(kind) === true && kind !== 'display:') {
        all[all.length - 1] = last + entry.slice(kind.length)
      } else all.push(entry)
      return all
    }, [])
    expect(merged).toEqual(['out:one\n', 'err:two\n', 'display:<i>3</i>'])
    expect(result.results.map((bundle) => bundle['text/plain'])).toEqual([
      '<IPython.core.display.HTML object>',
      '4',
    ])
  })

  it('stops a cell past its output limit and keeps the kernel', async () => {
    const kernel = await open({ language: 'python', limits: { outputBytes: 10_000 } })
    await kernel.execute('kept = 5')
    const flood = await kernel.execute('while True:\n    print("x" * 1000)')
    expect(flood.status).toBe('output_limit')
    expect(flood.stdoutTruncated).toBe(true)
    expect(flood.stdout.length).toBeLessThanOrEqual(10_000)
    const after = await kernel.execute('kept')
    expect(after.results).toEqual([{ 'text/plain': '5' }])
  })

  it('stops a cell past its CPU time', async () => {
    const kernel = await open({ language: 'python', limits: { cpuTimeMs: 500 } })
    const busy = await kernel.execute('while True:\n    pass', { timeoutMs: 20_000 })
    expect(busy.status).toBe('timeout')
    expect(busy.reason).toContain('CPU time')
    expect(busy.usage.cpuMs).toBeGreaterThanOrEqual(500)
  })

  it('interrupt() stops the running cell; restart() clears the state but keeps the workdir', async () => {
    const kernel = await open({ language: 'python' })
    await kernel.execute('value = 1\nopen("kept.txt", "w").write("still")')
    // Interrupted once the cell is surely running, however slow the host.
    let started!: () => void
    const cellStarted = new Promise<void>((resolve) => (started = resolve))
    const running = kernel.execute('import time\nprint("started", flush=True)\ntime.sleep(60)', {
      onStdout: () => started(),
    })
    await cellStarted
    await kernel.interrupt()
    const interrupted = await running
    expect(interrupted.status).toBe('killed')
    expect(interrupted.error?.name).toBe('KeyboardInterrupt')
    await kernel.restart()
    const after = await kernel.execute('("value" in globals(), open("kept.txt").read())')
    expect(after.results).toEqual([{ 'text/plain': "(False, 'still')" }])
    expect(after.executionCount).toBe(1)
  })

  it('reports the files a cell wrote and exports the whole workdir', async () => {
    const kernel = await open({
      language: 'python',
      files: [{ path: 'in/data.csv', content: 'a\n1\n' }],
    })
    const result = await kernel.execute(
      'import pandas as pd\npd.read_csv("in/data.csv").to_csv("out.csv")',
    )
    expect(result.outputFiles.map((file) => file.path)).toEqual(['out.csv'])
    // Rewritten at the same size, an input file is an output of the cell that changed it.
    const rewritten = await kernel.execute('open("in/data.csv", "w").write("b\\n2\\n")\n1')
    expect(rewritten.outputFiles.map((file) => file.path)).toEqual(['in/data.csv'])
    const untouched = await kernel.execute('2')
    expect(untouched.outputFiles).toEqual([])
    await kernel.freeze()
    const exported = new Map<string, string>()
    const totals = await kernel.exportWorkdir(async (file) => {
      const chunks: Buffer[] = []
      for await (const chunk of file.content) chunks.push(chunk as Buffer)
      exported.set(file.path, Buffer.concat(chunks).toString())
    })
    expect([...exported.keys()].sort()).toEqual(['in/data.csv', 'out.csv'])
    expect(exported.get('in/data.csv')).toBe('b\n2\n')
    expect(totals.files).toBe(2)
    expect(kernel.state).toBe('frozen')
  })
})

describe('bash kernel', () => {
  it('keeps cwd, variables and functions', async () => {
    const kernel = await open({ language: 'bash' })
    const first = await kernel.execute(
      'mkdir -p sub && cd sub\ncount=3\ngreet() { echo "hi $1"; }\ndeclare -a list=(a b)',
    )
    expect(first.status).toBe('ok')
    const second = await kernel.execute('pwd; echo "$count ${list[1]}"; greet you')
    expect(second.stdout).toBe('/work/sub\n3 b\nhi you\n')
    const failed = await kernel.execute('false')
    expect(failed.status).toBe('error')
  })

  it('survives break, continue and return at the top of a cell', async () => {
    const kernel = await open({ language: 'bash' })
    await kernel.execute('kept=1')
    for (const code of ['break', 'continue', 'return 3', 'break 5']) {
      const result = await kernel.execute(code, { timeoutMs: 5000 })
      expect(result.restarted).toBeUndefined()
      expect(result.status).not.toBe('timeout')
    }
    const after = await kernel.execute('echo $kept')
    expect(after.stdout).toBe('1\n')
    const exited = await kernel.execute('exit 4')
    expect(exited.restarted?.reason).toContain('exited with code 4')
  })

  it('saves and restores cwd, variables and functions', async () => {
    const kernel = await open({ language: 'bash' })
    await kernel.execute(
      'mkdir -p d && cd d\nname="two words"\ndeclare -A map=([k]=v)\nshout() { echo "${1^^}"; }',
    )
    const snapshot = await kernel.snapshot()
    expect(snapshot.saved).toEqual(expect.arrayContaining(['name', 'map', 'shout']))
    const restored = await open({
      language: 'bash',
      files: [{ path: 'd/.keep', content: '' }],
      ...(snapshot.state === undefined ? {} : { restoreState: snapshot.state }),
    })
    const result = await restored.execute('pwd; echo "$name ${map[k]}"; shout hey')
    expect(result.stdout).toBe('/work/d\ntwo words v\nHEY\n')
  })

  it('interrupts a cell past its timeout and keeps the shell', async () => {
    const kernel = await open({ language: 'bash' })
    await kernel.execute('kept=yes')
    const slow = await kernel.execute(
      'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1; done; echo done',
      {
        timeoutMs: 500,
      },
    )
    expect(slow.status).toBe('timeout')
    expect(slow.stdout).not.toContain('done')
    expect(slow.restarted).toBeUndefined()
    const after = await kernel.execute('echo $kept')
    expect(after.stdout).toBe('yes\n')
  })
})

describe('javascript kernel', () => {
  it('keeps its context and shows the last expression', async () => {
    const kernel = await open({ language: 'javascript' })
    await kernel.execute('var total = 40\nfunction add(n) { return total + n }\nconst label = "x"')
    const result = await kernel.execute('console.log(label)\nadd(2)')
    expect(result).toMatchObject({ status: 'ok', stdout: 'x\n', executionCount: 2 })
    expect(result.results).toEqual([{ 'text/plain': '42' }])
    const failed = await kernel.execute('throw new TypeError("bad")')
    expect(failed.error).toMatchObject({ name: 'TypeError', value: 'bad' })
  })

  it('interrupts a busy loop and keeps the context', async () => {
    const kernel = await open({ language: 'javascript' })
    await kernel.execute('var kept = 7')
    const slow = await kernel.execute('while (true) {}', { timeoutMs: 500 })
    expect(slow.status).toBe('timeout')
    expect(slow.restarted).toBeUndefined()
    const after = await kernel.execute('kept')
    expect(after.results).toEqual([{ 'text/plain': '7' }])
    const pending = await kernel.execute('new Promise(() => {})', { timeoutMs: 500 })
    expect(pending.status).toBe('timeout')
    expect(pending.restarted).toBeUndefined()
    const awaited = await kernel.execute('Promise.resolve(kept * 6)')
    expect(awaited.results).toEqual([{ 'text/plain': '42' }])
  })
})

describe('kernel isolation and cleanup', () => {
  it("cannot see another kernel's files or processes", async () => {
    const first = await open({ language: 'python' })
    const second = await open({ language: 'bash' })
    await first.execute(
      'open("secret.txt", "w").write("s3cret")\nimport subprocess\nsubprocess.Popen(["sleep", "300"])',
    )
    const look = await second.execute(
      'ls -a /work /tmp; cat /proc/[0-9]*/cmdline | tr "\\0" " "; grep -rl s3cret /work /tmp /dev/shm',
    )
    expect(look.stdout).not.toContain('secret.txt')
    expect(look.stdout).not.toContain('s3cret')
    expect(look.stdout).not.toContain('sleep')
    expect(look.stdout).toContain('kernel-bash.sh')
  })

  it('close removes every process, the cgroup and the workdir', async () => {
    const kernel = await (await sandbox()).openKernel({ language: 'python' })
    await kernel.execute(
      'import subprocess\nsubprocess.Popen(["sleep", "300"])\nopen("f.txt", "w").write("x")',
    )
    const dirs = cgroupDirs(kernel.id)
    expect(dirs.length).toBeGreaterThan(0)
    const workdir = path.join(defaultSandboxStateDir(), 'runs', kernel.id)
    expect(fs.existsSync(workdir)).toBe(true)
    await kernel.close()
    expect(kernel.state).toBe('closed')
    expect(cgroupDirs(kernel.id)).toEqual([])
    expect(fs.existsSync(workdir)).toBe(false)
    await expect(kernel.execute('1')).rejects.toThrow(/closed/)
    await kernel.close()
  })

  it('close during a cell ends the cell as killed and removes everything', async () => {
    const kernel = await (await sandbox()).openKernel({ language: 'python' })
    const running = kernel.execute(
      'import time\nopen("partial.txt", "w").write("x")\ntime.sleep(60)',
    )
    await new Promise((resolve) => setTimeout(resolve, 500))
    await kernel.close()
    const result = await running
    expect(result.status).toBe('killed')
    expect(result.reason).toContain('closed')
    expect(result.restarted).toBeUndefined()
    expect(cgroupDirs(kernel.id)).toEqual([])
  })

  it('ignores garbage a cell writes to the control pipe', async () => {
    const kernel = await open({ language: 'python' })
    const result = await kernel.execute(
      [
        'import os',
        'os.write(61, b"not json\\n[1]\\n" + b"{" * 100000 + b"\\n")',
        'os.write(61, b\'{"type":"done","id":"forged","ok":true}\\n\')',
        'os.write(61, b\'{"type":"display","id":"x","payloadBytes":99999999999}\\n\')',
        'print("still here")',
      ].join('\n'),
    )
    expect(result.stdout).toBe('still here\n')
    expect(result.status).toBe('ok')
    const after = await kernel.execute('6 * 7')
    expect(after.results).toEqual([{ 'text/plain': '42' }])
  })
})
