import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { SandboxError } from '@hutch/sandbox'
import { testBackends, testSandbox } from '../../../test/support/sandbox.ts'

/**
 * The behaviour every backend must have: languages, input and output, files, limits and their
 * statuses, streaming, bad input. Run against each backend in `testBackends`.
 */
describe.each(testBackends)('sandbox contract: %s', (backend) => {
  const sandbox = () => testSandbox(backend)

  describe('runtimes', () => {
    it.each([
      ['python', 'print("hello", 6 * 7)', 'hello 42\n'],
      ['bash', 'echo "hello $((6 * 7))"', 'hello 42\n'],
      ['shell', 'echo hello', 'hello\n'],
      ['sh', 'echo hello', 'hello\n'],
      ['javascript', 'console.log("hello", 6 * 7)', 'hello 42\n'],
      ['node', 'console.log(typeof require)', 'function\n'],
      ['js', 'console.log(process.version.startsWith("v24"))', 'true\n'],
      ['typescript', 'const n: number = 6 * 7\nconsole.log(`hello ${n}`)', 'hello 42\n'],
      ['ts', 'enum Color { Red }\nconsole.log(Color.Red)', '0\n'],
    ])('runs %s', async (language, code, stdout) => {
      const result = await (await sandbox()).run({ language, code })
      expect(result.stderr).toBe('')
      expect(result).toMatchObject({ status: 'ok', exitCode: 0, signal: null, stdout })
    })

    it('runs go', async () => {
      const code = 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello", 6*7) }\n'
      const result = await (
        await sandbox()
      ).run({
        language: 'go',
        code,
        limits: { memoryBytes: 1024 * 1024 * 1024, wallTimeMs: 120_000, cpuTimeMs: 120_000 },
      })
      expect(result.stderr).toBe('')
      expect(result).toMatchObject({ status: 'ok', stdout: 'hello 42\n' })
    })

    it('writes the code to the default path, or to the path given', async () => {
      const byDefault = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import os; print(os.path.basename(__file__), os.getcwd())',
      })
      expect(byDefault.stdout).toBe('main.py /work\n')
      const named = await (
        await sandbox()
      ).run({
        language: 'bash',
        path: 'tools/job.sh',
        code: 'echo "$0"',
      })
      expect(named.stdout).toBe('/work/tools/job.sh\n')
    })

    it('runs a python script as `python3 script` does: __main__, pickling, source, tracebacks', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        path: 'pkg/job.py',
        files: [{ path: 'pkg/helper.py', content: 'VALUE = 7\n' }],
        code: [
          'import inspect, pickle, sys',
          'import helper',
          'class Point:',
          '    def __init__(self, x): self.x = x',
          'def shown(): return 1',
          'print(__name__, __package__, __spec__, sys.modules["__main__"].__file__)',
          'print(sys.argv, sys.path[0], helper.VALUE)',
          'print(pickle.loads(pickle.dumps(Point(3))).x, inspect.getsource(shown).strip())',
          'if __name__ == "__main__":',
          '    raise ValueError("boom")',
        ].join('\n'),
      })
      expect(result.stdout).toBe(
        [
          '__main__ None None /work/pkg/job.py',
          "['/work/pkg/job.py'] /work/pkg 7",
          '3 def shown(): return 1',
          '',
        ].join('\n'),
      )
      expect(result.exitCode).toBe(1)
      expect(result.stderr).toContain('File "/work/pkg/job.py", line 10, in <module>')
      expect(result.stderr).toContain('raise ValueError("boom")')
      expect(result.stderr).toMatch(/ValueError: boom\n$/)
    })

    it('runs a program given among the files, with no code', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        path: 'app.py',
        files: [{ path: 'app.py', content: 'print("from a file")' }],
      })
      expect(result.stdout).toBe('from a file\n')
    })
  })

  describe('python from a virtualenv (as boxedpy)', () => {
    it('runs the venv interpreter, imports its packages and cannot write to it', async () => {
      const venv = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-venv-'))
      // The sandbox user reads the venv as "others", as a venv installed for a service is.
      fs.chmodSync(venv, 0o755)
      const made = spawnSync('/usr/bin/python3', ['-m', 'venv', '--without-pip', venv])
      expect(made.status, String(made.stderr)).toBe(0)
      const [sitePackages] = fs.globSync(path.join(venv, 'lib/python3*/site-packages'))
      fs.writeFileSync(path.join(sitePackages ?? venv, 'hutch_probe.py'), 'ANSWER = 42\n')
      const withVenv = await testSandbox(backend, { runtimes: { virtualEnv: venv } })
      const result = await withVenv.run({
        language: 'python',
        code: [
          'import sys, hutch_probe',
          'print(sys.prefix, hutch_probe.ANSWER)',
          'try:',
          '    open(hutch_probe.__file__, "a")',
          'except OSError as e:',
          '    print("read-only", e.errno)',
        ].join('\n'),
      })
      expect(result.stderr).toBe('')
      // EROFS, or EACCES first when the venv's owner is not the sandbox user.
      expect(result.stdout).toMatch(new RegExp(`^${venv} 42\nread-only (30|13)\n$`))
    })
  })

  describe('input and output', () => {
    it('passes stdin and args', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import sys; print(sys.argv[1:], sys.stdin.read().upper())',
        args: ['one', 'two words'],
        stdin: 'some input',
      })
      expect(result.stdout).toBe("['one', 'two words'] SOME INPUT\n")
    })

    it('keeps stdout and stderr apart', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: 'echo out1; echo err1 >&2; echo out2; echo err2 >&2',
      })
      expect(result.stdout).toBe('out1\nout2\n')
      expect(result.stderr).toBe('err1\nerr2\n')
    })

    it('gives the program only the environment asked for', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: 'env | sort',
        env: { GREETING: 'hi there' },
      })
      const names = result.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0])
      expect(result.stdout).toContain('GREETING=hi there\n')
      expect(names).not.toContain('NODE_OPTIONS')
      expect(names).not.toContain('npm_config_nodedir')
      for (const name of Object.keys(process.env)) {
        if (
          [
            'PATH',
            'HOME',
            'LANG',
            'LC_ALL',
            'USER',
            'LOGNAME',
            'TMPDIR',
            'PWD',
            'SHLVL',
            '_',
          ].includes(name)
        )
          continue
        expect(names, `server variable ${name} leaked`).not.toContain(name)
      }
    })

    it('streams output while the program runs, unbuffered', async () => {
      const seen: { at: number; text: string }[] = []
      const started = Date.now()
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import time\nprint("first")\ntime.sleep(0.8)\nprint("second")',
        onStdout: (chunk) => seen.push({ at: Date.now() - started, text: chunk.toString() }),
      })
      expect(result.stdout).toBe('first\nsecond\n')
      expect(seen.map((s) => s.text).join('')).toBe('first\nsecond\n')
      // The first line arrived well before the program ended: it was not held in a buffer.
      let text = ''
      const firstLineAt = seen.find((s) => (text += s.text).includes('first\n'))?.at ?? Infinity
      expect(text).not.toContain('second')
      expect(result.usage.wallMs - firstLineAt).toBeGreaterThan(400)
    })

    it('reports a non-zero exit as error with its code', async () => {
      const result = await (await sandbox()).run({ language: 'bash', code: 'echo bye; exit 3' })
      expect(result).toMatchObject({ status: 'error', exitCode: 3, stdout: 'bye\n' })
    })

    it('reports a death by signal as killed', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)',
      })
      expect(result).toMatchObject({ status: 'killed', signal: 'SIGSEGV', exitCode: null })
    })

    it('parses a Python error with its line and a hint', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'values = [1, 2]\ntotal = sum(values)\nprint(totl)\n',
      })
      expect(result.status).toBe('error')
      expect(result.error, result.stderr).toMatchObject({ name: 'NameError', line: 3 })
      expect(result.error?.hint).toContain('total')
    })

    it('reports usage', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'x = bytearray(40 * 1024 * 1024)\nsum(range(3_000_000))',
      })
      expect(result.status).toBe('ok')
      expect(result.usage.wallMs).toBeGreaterThan(0)
      expect(result.usage.cpuMs).toBeGreaterThan(0)
      expect(result.usage.peakMemoryBytes).toBeGreaterThan(40 * 1024 * 1024)
    })
  })

  describe('files', () => {
    it('copies input files in and new and modified files out, recursively', async () => {
      const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-out-'))
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: [
          'import os',
          'print(open("data/in.csv").read().strip())',
          'os.makedirs("plots/deep", exist_ok=True)',
          'open("plots/deep/a.txt", "w").write("new")',
          'open("data/in.csv", "a").write("3,4\\n")',
        ].join('\n'),
        files: [
          { path: 'data/in.csv', content: 'a,b\n1,2\n' },
          { path: 'untouched.txt', content: 'same' },
        ],
        outputDir: outDir,
      })
      expect(result.stdout).toBe('a,b\n1,2\n')
      expect(result.outputFiles.map((f) => f.path).sort()).toEqual([
        'data/in.csv',
        'plots/deep/a.txt',
      ])
      expect(result.outputFiles.find((f) => f.path === 'data/in.csv')).toMatchObject({
        mediaType: 'text/csv',
        size: 12,
      })
      expect(fs.readFileSync(path.join(outDir, 'plots/deep/a.txt'), 'utf8')).toBe('new')
      expect(fs.readFileSync(path.join(outDir, 'data/in.csv'), 'utf8')).toBe('a,b\n1,2\n3,4\n')
      expect(fs.existsSync(path.join(outDir, 'untouched.txt'))).toBe(false)
    })

    it('copies a host file in', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-in-'))
      fs.writeFileSync(path.join(dir, 'numbers.txt'), '1\n2\n3\n')
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: "awk '{ s += $1 } END { print s }' numbers.txt",
        files: [{ path: 'numbers.txt', hostPath: path.join(dir, 'numbers.txt') }],
      })
      expect(result.stdout).toBe('6\n')
    })

    it('gives python the host’s matplotlib font cache, so plotting does not rescan fonts', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: [
          'import glob, os, matplotlib.font_manager',
          '[cache] = glob.glob("/tmp/.matplotlib/fontlist-v*.json")',
          'print(os.path.getsize(cache) > 1000, os.access(cache, os.W_OK))',
        ].join('\n'),
      })
      expect(result.stderr).toBe('')
      // Present, and read-only: matplotlib used it rather than rebuilding it.
      expect(result.stdout).toBe('True False\n')
    })

    it('gives a PNG made by matplotlib its media type', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.savefig("chart.png")',
      })
      expect(result.stderr).toBe('')
      expect(result.outputFiles).toEqual([
        expect.objectContaining({ path: 'chart.png', mediaType: 'image/png' }),
      ])
    })
  })

  describe('limits', () => {
    it('stops a program past its wall time, keeping its output', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import time\nprint("started")\ntime.sleep(60)',
        limits: { wallTimeMs: 1000 },
      })
      expect(result.status).toBe('timeout')
      expect(result.exitCode).not.toBe(0)
      expect(result.stdout).toBe('started\n')
      expect(result.usage.wallMs).toBeLessThan(20_000)
    })

    it('stops a program past its CPU time', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'while True: pass',
        limits: { cpuTimeMs: 500, wallTimeMs: 30_000 },
      })
      expect(result.status).toBe('timeout')
      expect(result.reason).toMatch(/CPU/)
      expect(result.usage.wallMs).toBeLessThan(20_000)
    })

    it('ends a program past its memory as memory_limit', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'chunks = []\nwhile True: chunks.append(bytearray(16 * 1024 * 1024))',
        limits: { memoryBytes: 64 * 1024 * 1024 },
      })
      expect(result.status).toBe('memory_limit')
    })

    it('ends a flood of output as output_limit, truncated at the limit', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: 'yes hutch',
        limits: { outputBytes: 10_000 },
      })
      expect(result.status).toBe('output_limit')
      expect(result.stdoutTruncated).toBe(true)
      expect(Buffer.byteLength(result.stdout)).toBe(10_000)
      expect(result.stdout.startsWith('hutch\nhutch\n')).toBe(true)
    })

    it('counts stdout and stderr against one output budget', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: 'head -c 6000 /dev/zero | tr "\\0" o; head -c 6000 /dev/zero | tr "\\0" e >&2; sleep 5',
        limits: { outputBytes: 10_000 },
      })
      expect(result.status).toBe('output_limit')
      expect(Buffer.byteLength(result.stdout) + Buffer.byteLength(result.stderr)).toBe(10_000)
      expect(result.stderrTruncated).toBe(true)
    })

    it('refuses a file larger than fileSizeBytes', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nopen("big.bin", "wb").write(b"x" * 2_000_000)',
        limits: { fileSizeBytes: 1_000_000 },
      })
      expect(result.status).toBe('error')
      expect(result.stderr).toMatch(/File too large|EFBIG/)
    })

    it('bounds the disk a run may fill', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'bash',
        code: 'head -c 20000000 /dev/zero > /tmp/fill || echo "tmp full"; head -c 20000000 /dev/zero > fill || echo "workdir full"',
        limits: { diskBytes: 8 * 1024 * 1024 },
      })
      expect(result.stdout).toContain('tmp full')
      if (process.getuid?.() === 0) expect(result.stdout).toContain('workdir full')
    })

    it('bounds open files', async () => {
      const result = await (
        await sandbox()
      ).run({
        language: 'python',
        code: 'import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))\nfs = [open("/dev/null") for _ in range(100)]',
        limits: { openFiles: 32 },
      })
      expect(result.stderr).toContain('Too many open files')
      expect(result.stdout).toBe('(32, 32)\n')
      expect(result.status).toBe('error')
      expect(result.error?.name).toBe('OSError')
    })

    it('clamps limits above the maxima', async () => {
      const s = await sandbox()
      const result = await s.run({
        language: 'python',
        code: 'import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE)[0])',
        limits: { openFiles: 10_000_000 },
      })
      expect(result.stdout).toBe(`${s.limits.maxima.openFiles}\n`)
    })
  })

  describe('prepared sandboxes (the warm pool path)', () => {
    it('runs in a slot prepared ahead, with this run’s own time limit', async () => {
      const s = await sandbox()
      const slot = await s.prepare()
      const phases: string[] = []
      const result = await s.run({
        language: 'bash',
        code: 'echo ready; sleep 30',
        slot,
        limits: { wallTimeMs: 500 },
        onPhase: (phase) => phases.push(phase),
      })
      expect(result).toMatchObject({ id: slot.runId, status: 'timeout', stdout: 'ready\n' })
      expect(phases).toEqual(['syncing_in', 'running', 'syncing_out'])
      await expect(slot.run({ argv: ['/bin/true'], policy: {} as never })).rejects.toThrow(/once/)
    })

    it('refuses a slot whose memory limit differs from the run’s', async () => {
      const s = await sandbox()
      const slot = await s.prepare()
      const attempt = s.run({
        language: 'bash',
        code: 'true',
        slot,
        limits: { memoryBytes: 1 << 26 },
      })
      await expect(attempt).rejects.toMatchObject({ code: 'invalid_request' })
    })
  })

  describe('bad input is a clear error', () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ['an unknown language', { language: 'cobol', code: '' }, 'unsupported_language'],
      [
        'a negative limit',
        { language: 'bash', code: '', limits: { memoryBytes: -1 } },
        'invalid_limit',
      ],
      [
        'a fractional limit',
        { language: 'bash', code: '', limits: { pids: 1.5 } },
        'invalid_limit',
      ],
      [
        'a NaN limit',
        { language: 'bash', code: '', limits: { wallTimeMs: Number.NaN } },
        'invalid_limit',
      ],
      [
        'an absurd limit',
        { language: 'bash', code: '', limits: { wallTimeMs: 1e300 } },
        'invalid_limit',
      ],
      ['an unknown limit', { language: 'bash', code: '', limits: { gpus: 1 } }, 'invalid_limit'],
      [
        'a path escaping the workdir',
        { language: 'bash', code: '', path: '../x.sh' },
        'invalid_path',
      ],
      ['an absolute path', { language: 'bash', code: '', path: '/etc/x.sh' }, 'invalid_path'],
      [
        'a NUL byte in a file name',
        { language: 'bash', code: '', files: [{ path: 'a\0b', content: '' }] },
        'invalid_path',
      ],
      [
        'a file escaping the workdir',
        { language: 'bash', code: '', files: [{ path: 'a/../../b', content: '' }] },
        'invalid_path',
      ],
      [
        'an unknown network',
        { language: 'bash', code: '', network: 'internet' },
        'invalid_request',
      ],
      ['a NUL byte in an arg', { language: 'bash', code: '', args: ['a\0b'] }, 'invalid_request'],
      ['a bad env name', { language: 'bash', code: '', env: { 'A=B': 'x' } }, 'invalid_request'],
      [
        'LD_PRELOAD in env',
        { language: 'bash', code: '', env: { LD_PRELOAD: '/x.so' } },
        'invalid_request',
      ],
      ['no code and no file', { language: 'bash' }, 'invalid_request'],
    ]
    it.each(cases)('%s', async (_name, options, code) => {
      const s = await sandbox()
      const attempt = s.run(options as unknown as Parameters<typeof s.run>[0])
      await expect(attempt).rejects.toBeInstanceOf(SandboxError)
      await expect(attempt).rejects.toMatchObject({ code })
    })

    it('a missing host file is a clear error', async () => {
      const attempt = (await sandbox()).run({
        language: 'bash',
        code: 'true',
        files: [{ path: 'x', hostPath: '/nonexistent/file' }],
      })
      await expect(attempt).rejects.toBeInstanceOf(SandboxError)
    })
  })
})
