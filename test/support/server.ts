import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import type { RunningServer } from '@hutch/server'
import { loadConfig, startServer } from '@hutch/server'

/** A real hutch server on a free loopback port, with its own data, sandbox state and cgroups. */
export interface TestServer {
  url: string
  dataDir: string
  server: RunningServer
  /** fetch against the server, JSON in and out. */
  request(
    method: string,
    urlPath: string,
    options?: {
      body?: unknown
      headers?: Record<string, string>
      raw?: string | Buffer | FormData
    },
  ): Promise<{ status: number; headers: Headers; json: unknown; text: string }>
  stop(): Promise<void>
}

/** Starts a server with flags (as `hutch serve` takes them) and environment variables. */
export async function startTestServer(
  options: {
    flags?: string[]
    env?: Record<string, string>
    dataDir?: string
    /** Where the server logs; silent unless HUTCH_TEST_LOG names a level. */
    logger?: pino.Logger
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-server-'))
  // Sandbox uids traverse it to reach the sandbox state inside.
  fs.chmodSync(dataDir, 0o711)
  const config = loadConfig({
    // Small pools, and no standby session kernel (its imports cost a second of CPU per server):
    // the session tests and bench ask for one.
    env: {
      HUTCH_POOL_MIN_WARM: '1',
      HUTCH_POOL_MAX_WARM: '2',
      HUTCH_SESSION_STANDBY_KERNELS: '0',
      ...options.env,
    },
    argv: ['--port', '0', '--data-dir', dataDir, ...(options.flags ?? [])],
    cwd: dataDir,
  })
  const server = await startServer(config, {
    logger: options.logger ?? pino({ level: process.env['HUTCH_TEST_LOG'] ?? 'silent' }),
    ...testServerPlacement(dataDir),
  })
  return {
    url: server.url,
    dataDir,
    server,
    async request(method, urlPath, requestOptions = {}) {
      const response = await fetch(`${server.url}${urlPath}`, {
        method,
        headers: {
          ...(requestOptions.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...requestOptions.headers,
        },
        ...(requestOptions.body === undefined
          ? requestOptions.raw === undefined
            ? {}
            : { body: requestOptions.raw }
          : { body: JSON.stringify(requestOptions.body) }),
      })
      const text = await response.text()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.status, headers: response.headers, json, text }
    },
    async stop() {
      await server.shutdown()
      fs.rmSync(dataDir, { recursive: true, force: true })
      await removeCgroupParent(testServerPlacement(dataDir).cgroupParent)
    },
  }
}

/** Where a test server keeps its sandboxes: inside its data dir, under a cgroup of its own. */
export function testServerPlacement(dataDir: string): {
  sandboxStateDir: string
  cgroupParent: string
} {
  return {
    sandboxStateDir: path.join(dataDir, 'sandbox'),
    cgroupParent: `hutch-test-${path.basename(dataDir)}`,
  }
}

/**
 * Removes a test's (empty) cgroup parent from every hierarchy, so tests leave none behind. The
 * kernel may still be tearing down a child just removed: retry briefly on EBUSY.
 */
export async function removeCgroupParent(name: string): Promise<void> {
  const roots = [
    '/sys/fs/cgroup',
    ...fs.readdirSync('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}`),
  ]
  for (const root of roots) {
    const dir = path.join(root, name)
    for (let attempt = 0; attempt < 20 && fs.existsSync(dir); attempt++) {
      try {
        fs.rmdirSync(dir)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EBUSY') break
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  }
}
