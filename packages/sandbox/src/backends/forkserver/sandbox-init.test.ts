import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildSandboxInit } from './sandbox-init.ts'

describe('the fast path sandbox init', () => {
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

  it('says which compiler failed when none can build it', async () => {
    await expect(buildSandboxInit(cacheDir + '-other', '/nonexistent/cc')).rejects.toThrow(
      /cannot build the fast path's sandbox init with \/nonexistent\/cc/,
    )
    fs.rmSync(cacheDir + '-other', { recursive: true, force: true })
  })
})
