import { randomUUID } from 'node:crypto'
import type { InputFile, Kernel } from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { Namespace } from '../namespace.ts'
import type { Storage } from '../storage/storage.ts'
import type { LostName, SavedState } from './session-repository.ts'

/** What a save wrote, and what it could not keep. */
export interface SaveResult {
  savedState: SavedState
  lost: LostName[]
}

/** Caps on what one save writes. */
export interface SessionStateCaps {
  /** Largest interpreter state, bytes. */
  maxStateBytes: number
  /** Largest workdir file, bytes. */
  maxFileBytes: number
}

// Enough for any page of a session's keys; a session's save holds its workdir's files (capped by
// the kernel's export) and one state.
const listPage = 1000

/**
 * The COLD state of sessions: each save is a generation under `{sessionId}/{generation}/` — the
 * interpreter's state at `state`, the workdir's files at `workdir/{path}` — in a `Storage` of its
 * own, apart from the tenants' files, so `/v1/files` never lists, serves or overwrites them.
 * Within it, keys are still per namespace (`{userId}/{chatId}/...`). A new generation is written
 * whole before the record points at it, and the old one is removed after: a crash mid-save leaves
 * the previous save intact.
 */
export class SessionStateStore {
  readonly #storage: Storage
  readonly #caps: SessionStateCaps

  constructor(storage: Storage, caps: SessionStateCaps) {
    this.#storage = storage
    this.#caps = caps
  }

  /**
   * Saves a kernel's interpreter state and workdir as a new generation. A part that fails is
   * reported in `lost` rather than thrown, so that an eviction always ends COLD.
   */
  async save(namespace: Namespace, sessionId: string, kernel: Kernel): Promise<SaveResult> {
    const prefix = `${sessionId}/${randomUUID()}/`
    const lost: LostName[] = []
    let stateKey: string | null = null
    try {
      if (kernel.state === 'frozen') await kernel.thaw()
      const snapshot = await kernel.snapshot()
      lost.push(...snapshot.lost)
      if (snapshot.state !== undefined) {
        stateKey = `${prefix}state`
        await this.#storage.put(namespace, stateKey, snapshot.state, {
          maxBytes: this.#caps.maxStateBytes,
          mediaType: 'application/octet-stream',
        })
      }
    } catch (error) {
      stateKey = null
      lost.push({ name: '*', reason: `the interpreter's state could not be saved: ${why(error)}` })
    }
    const files: string[] = []
    try {
      await kernel.exportWorkdir(async (file) => {
        await this.#storage.put(namespace, `${prefix}workdir/${file.path}`, file.content, {
          maxBytes: Math.min(file.size, this.#caps.maxFileBytes),
          mediaType: file.mediaType,
        })
        files.push(file.path)
      })
    } catch (error) {
      lost.push({ name: 'workdir', reason: `not every file could be saved: ${why(error)}` })
    }
    return {
      savedState: { prefix, stateKey, files, savedAt: new Date().toISOString() },
      lost: boundedLost(lost),
    }
  }

  /** The saved workdir as input files of a new kernel, each read from storage when written. */
  files(namespace: Namespace, saved: SavedState): InputFile[] {
    const storage = this.#storage
    return saved.files.map((path) => ({
      path,
      body: {
        async *[Symbol.asyncIterator]() {
          const found = await storage.get(namespace, `${saved.prefix}workdir/${path}`)
          if (found === undefined) {
            throw new AppError('internal', 'a saved session file is missing', { path })
          }
          yield* found.body
        },
      },
    }))
  }

  /** The saved interpreter state, or undefined when the save had none. */
  async state(namespace: Namespace, saved: SavedState): Promise<Uint8Array | undefined> {
    if (saved.stateKey === null) return undefined
    const found = await this.#storage.get(namespace, saved.stateKey)
    if (found === undefined) return undefined
    const chunks: Buffer[] = []
    for await (const chunk of found.body) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  /** Removes every key under a prefix: one generation, or (`{sessionId}/`) a whole session. */
  async remove(namespace: Namespace, prefix: string): Promise<void> {
    for (;;) {
      const { files } = await this.#storage.list(namespace, { prefix, limit: listPage })
      let removed = 0
      for (const file of files) if (await this.#storage.delete(namespace, file.path)) removed += 1
      // Nothing left, or only what cannot be removed (a file deleted meanwhile is not counted).
      if (removed === 0) return
    }
  }
}

/** Most names kept in a list of lost names; the rest are counted in one last entry. */
export const maxLostNames = 100
const maxNameLength = 200
const maxReasonLength = 300

/**
 * A list of names the sandbox reported, bounded: the interpreter is the tenant's, and a program
 * with a million unpicklable globals must not write a million rows' worth into its record.
 */
export function boundedLost(lost: readonly LostName[]): LostName[] {
  const kept = lost.slice(0, maxLostNames).map(({ name, reason }) => ({
    name: String(name).slice(0, maxNameLength),
    reason: String(reason).slice(0, maxReasonLength),
  }))
  if (lost.length > maxLostNames) {
    kept.push({ name: '…', reason: `and ${lost.length - maxLostNames} more names` })
  }
  return kept
}

/** Names the sandbox reported restored, bounded like {@link boundedLost}. */
export function boundedNames(names: readonly string[]): string[] {
  const kept = names.slice(0, maxLostNames).map((name) => String(name).slice(0, maxNameLength))
  if (names.length > maxLostNames) kept.push(`… and ${names.length - maxLostNames} more`)
  return kept
}

function why(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
