import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { startTestServer, testServerPlacement } from '../../support/server.ts'
import { hostProcessesWith, waitUntil } from '../../support/processes.ts'

// With the fast path off, a run's workdir is a tmpfs on the host, left behind with its cgroup;
// with it on, the workdir lives in the sandbox's own mount namespace and dies with it, so only
// cgroups (the run's, the fork servers') are left to remove.
describe.each(['false', 'true'])(
  'kill -9 of the server in the middle of a run (fast path %s)',
  (fastPath) => {
    it('leaves no stray process or cgroup after a restart, and the run marked failed', async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-server-'))
      fs.chmodSync(dataDir, 0o711)
      const placement = testServerPlacement(dataDir)
      const root = path.resolve(import.meta.dirname, '../../..')
      const child = spawn(
        process.execPath,
        [
          '--conditions=hutch-source',
          '--input-type=module',
          '-e',
          `import pino from 'pino'
         import { loadConfig, startServer } from '@hutch/server'
         const config = loadConfig({ env: { HUTCH_POOL_MIN_WARM: '0', HUTCH_FAST_PATH: '${fastPath}' }, argv: ['--port', '0', '--data-dir', ${JSON.stringify(dataDir)}], cwd: ${JSON.stringify(dataDir)} })
         const server = await startServer(config, { logger: pino({ level: 'silent' }), ...${JSON.stringify(placement)} })
         console.log(server.url)`,
        ],
        { cwd: path.join(root, 'packages/server'), stdio: ['ignore', 'pipe', 'inherit'] },
      )
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()))
        child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
      })
      const suffix = `${process.pid}-${Date.now()}`
      const marker = `hutch-crash-${suffix}`
      // The marker is assembled inside the sandbox so that only the sandboxed process carries it.
      const running = fetch(`${url}/v1/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          language: 'bash',
          code: `m=hutch-crash; exec -a "$m-${suffix}" sleep 1000`,
          timeoutMs: 60_000,
        }),
      }).catch(() => undefined)
      expect(await waitUntil(() => hostProcessesWith(marker).length > 0, 20_000)).toBe(true)
      const runCgroups = () =>
        fs
          .readdirSync('/sys/fs/cgroup/memory')
          .filter((name) => name === placement.cgroupParent)
          .flatMap((name) => fs.readdirSync(`/sys/fs/cgroup/memory/${name}`))
          .filter((name) => name.startsWith('run-'))
      const crashedServers = runCgroups()
      expect(crashedServers.length).toBeGreaterThanOrEqual(1)
      child.kill('SIGKILL')
      await running
      expect(await waitUntil(() => hostProcessesWith(marker).length === 0, 10_000)).toBe(true)

      const restarted = await startTestServer({ dataDir, env: { HUTCH_FAST_PATH: fastPath } })
      try {
        // The killed run, and the sandbox the pool was starting to replace it.
        const { executionsFailed, workdirs, cgroups } = restarted.server.reconciled
        expect(executionsFailed).toBe(1)
        if (fastPath === 'false') {
          expect(workdirs).toBeGreaterThanOrEqual(1)
          expect(cgroups).toBe(workdirs)
        } else {
          expect(cgroups).toBeGreaterThanOrEqual(1)
        }
        const list = await restarted.request('GET', '/v1/executions')
        const [record] = (list.json as { items: { status: string; reason: string }[] }).items
        expect(record).toMatchObject({
          status: 'failed',
          reason: expect.stringContaining('stopped'),
        })
        // Only the new server's cgroups (its warm pools, its fork servers): none of the old one's.
        expect(runCgroups().filter((name) => crashedServers.includes(name))).toEqual([])
        expect(hostProcessesWith(marker)).toEqual([])
      } finally {
        await restarted.stop()
      }
    })
  },
)
