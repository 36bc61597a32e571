import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildForkServerLoop, buildSandboxInit } from './native-programs.ts'

describe("the fast path's native programs", () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-init-'))
  afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }))

  it('is built once per source version, and refuses to run as anything but pid 1', async () => {
    const [first, second] = await Promise.all([
      buildSandboxInit(cacheDir),
      buildSandboxInit(cacheDir),
    ])
    expect(second).toBe(first)
    expect(path.dirname(first)).toBe(path.join(cacheDir, 'bin'))
    const builtAt = fs.statSync(first).mtimeMs
    expect(await buildSandboxInit(cacheDir)).toBe(first)
    expect(fs.statSync(first).mtimeMs).toBe(builtAt)
    // Only the built file is left: concurrent builds renamed theirs into place.
    expect(fs.readdirSync(path.join(cacheDir, 'bin'))).toEqual([path.basename(first)])
    // Outside a new pid namespace it does nothing at all.
    expect(spawnSync(first).status).toBe(120)
    // Built without the C library here (a few kB; with glibc linked in statically, ~750 kB).
    if (['x64', 'arm64'].includes(process.arch)) {
      expect(fs.statSync(first).size).toBeLessThan(64 * 1024)
    }
  })

  it("builds the fork server's loop, which refuses malformed commands and stops when told", async () => {
    const loop = await buildForkServerLoop(cacheDir)
    expect(await buildForkServerLoop(cacheDir)).toBe(loop)
    // The loop with no child to make: only its reading of commands and its events are exercised.
    const harness = [
      'import ctypes, sys',
      'serve = ctypes.PyDLL(sys.argv[1]).hutch_forkserver_serve',
      'config = (ctypes.c_char * 256)()',
      'start = (ctypes.c_int * 2)()',
      'print(serve(config, start), flush=True)',
    ].join('\n')
    const commands = [
      'spawn bad/id none 1 1 1 1 1',
      'spawn ok-id wifi 1 1 1 1 1',
      'spawn ok-id none 1 1 1 1',
      'spawn ok-id none 1 1 1 1 1 extra',
      'stop',
      'spawn never none 1 1 1 1 1',
    ]
    const result = spawnSync('/usr/bin/python3', ['-c', harness, loop], {
      input: commands.join('\n') + '\n',
      encoding: 'utf8',
      timeout: 10_000,
    })
    expect(result.stderr).toBe('')
    const lines = result.stdout.trim().split('\n')
    expect(lines.slice(0, 4).map((line) => JSON.parse(line) as unknown)).toEqual([
      { ev: 'failed', id: 'bad', reason: 'a malformed spawn command' },
      { ev: 'failed', id: 'ok-id', reason: 'a malformed spawn command' },
      { ev: 'failed', id: 'ok-id', reason: 'a malformed spawn command' },
      { ev: 'failed', id: 'ok-id', reason: 'a malformed spawn command' },
    ])
    // `stop` returns 0, and nothing after it is read.
    expect(lines.slice(4)).toEqual(['0'])
  })

  it('says which compiler failed when none can build it', async () => {
    await expect(buildSandboxInit(cacheDir + '-other', '/nonexistent/cc')).rejects.toThrow(
      /cannot build the fast path's sandbox init with \/nonexistent\/cc/,
    )
    fs.rmSync(cacheDir + '-other', { recursive: true, force: true })
  })
})
