import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Sandbox } from '@hutch/sandbox'
import { silentLogger } from '@hutch/sandbox'
import { createDatabase } from '../../packages/server/src/db/database.ts'
import type { Database } from '../../packages/server/src/db/database.ts'
import { SessionRepository } from '../../packages/server/src/sessions/session-repository.ts'
import type { SessionServiceOptions } from '../../packages/server/src/sessions/session-service.ts'
import { SessionService } from '../../packages/server/src/sessions/session-service.ts'
import { SessionStateStore } from '../../packages/server/src/sessions/session-state-store.ts'
import { LocalStorage } from '../../packages/server/src/storage/local-storage.ts'

/**
 * Session services over real kernels, a real SQLite database and real local storage, in a
 * directory of their own: each `build` is a fresh service (a server start) on the same state.
 */
export interface SessionServiceBed {
  /** The sessions' records, read as a restarted server would. */
  readonly database: Database
  /** The tenants' files. */
  readonly files: LocalStorage
  /** Where COLD sessions are saved. */
  readonly stateStorage: LocalStorage
  /** A new service; with `standby`, kernels started ahead with those modules preloaded. */
  build(
    options?: Partial<SessionServiceOptions>,
    standby?: { size: number; preload: readonly string[] },
  ): SessionService
  /** Closes the last service built and the database, and removes the directory. */
  close(): Promise<void>
}

export async function sessionServiceBed(sandbox: Sandbox): Promise<SessionServiceBed> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'hutch-sessions-'))
  const database: Database = await createDatabase({ url: path.join(directory, 'hutch.db') })
  const files = new LocalStorage(path.join(directory, 'files'))
  const stateStorage = new LocalStorage(path.join(directory, 'session-state'))
  let last: SessionService | undefined
  return {
    database,
    files,
    stateStorage,
    build(options = {}, standby) {
      last = new SessionService({
        openKernel: (kernelOptions) => sandbox.openKernel(kernelOptions),
        repository: new SessionRepository(database),
        states: new SessionStateStore(stateStorage, {
          maxStateBytes: 64 * 1024 ** 2,
          maxFileBytes: 64 * 1024 ** 2,
        }),
        storage: files,
        logger: silentLogger,
        options: {
          defaultWarmAfterMs: 600_000,
          maxWarmAfterMs: 600_000,
          defaultColdAfterMs: 600_000,
          maxColdAfterMs: 600_000,
          maxHotSessions: 8,
          maxWarmSessions: 8,
          maxSessionsPerNamespace: 3,
          maxOutputFileBytes: 1024 ** 2,
          fileUrl: (_namespace, filePath) => `/v1/files/${filePath}`,
          ...options,
        },
        ...(standby === undefined
          ? {}
          : {
              standby: {
                ...standby,
                resolveLimits: (requested) => sandbox.resolveLimits(requested),
              },
            }),
      })
      return last
    },
    async close() {
      await last?.close('test ended', 0)
      await database.close()
      await rm(directory, { recursive: true, force: true })
    },
  }
}
