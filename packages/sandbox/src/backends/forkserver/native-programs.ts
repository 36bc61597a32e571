import { execFile } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { SandboxError } from '../../sandbox-error.ts'

const execFileAsync = promisify(execFile)

/** The source of every fast-path sandbox's pid 1 (see the file's own comment). */
export const sandboxInitSourcePath: string = fileURLToPath(
  new URL('../../../assets/hutch-init.c', import.meta.url),
)

/** The source of the fork server's loop and a child's set-up (see the file's own comment). */
export const forkServerLoopSourcePath: string = fileURLToPath(
  new URL('../../../assets/hutch-forkserver.c', import.meta.url),
)

/** The C compiler the fast path's programs are built with (Debian's `gcc`; `hutch doctor` checks it). */
export const defaultCompilerPath = '/usr/bin/cc'

/** The init's builds, tried in turn: the first that compiles wins. */
const initBuildFlags: readonly (readonly string[])[] = [
  [
    '-static',
    '-nostdlib',
    '-ffreestanding',
    '-fno-stack-protector',
    '-fno-builtin',
    '-no-pie',
    '-DHUTCH_INIT_FREESTANDING',
  ],
  ['-static'],
  [],
]

/** The loop is a shared library the fork server's Python loads. */
const loopBuildFlags: readonly (readonly string[])[] = [['-shared', '-fPIC']]

interface NativeProgram {
  /** Names the built file, and the build in errors. */
  name: string
  description: string
  sourcePath: string
  buildFlags: readonly (readonly string[])[]
}

/**
 * Builds a program once per source version and flags into `<cacheDir>/bin` (the host's cache, as
 * the seccomp filters), and returns its path. Concurrent callers each build to a file of their
 * own and rename it into place.
 */
async function buildNative(
  program: NativeProgram,
  cacheDir: string,
  compilerPath: string,
): Promise<string> {
  const source = await fsp.readFile(program.sourcePath)
  const version = createHash('sha256')
    .update(source)
    .update(JSON.stringify(program.buildFlags))
    .digest('hex')
    .slice(0, 16)
  const binDir = path.join(cacheDir, 'bin')
  const target = path.join(binDir, `${program.name}-${version}`)
  try {
    await fsp.access(target)
    return target
  } catch {
    // Not built yet.
  }
  await fsp.mkdir(binDir, { recursive: true, mode: 0o755 })
  const temporary = `${target}.${randomUUID()}`
  const compile = (extra: readonly string[]) =>
    execFileAsync(compilerPath, ['-O2', '-Wall', ...extra, '-o', temporary, program.sourcePath], {
      timeout: 60_000,
    })
  try {
    // Each build in turn until one compiles; the last one's error otherwise.
    await program.buildFlags.reduce<Promise<unknown>>(
      (previous, flags) => previous.catch(() => compile(flags)),
      Promise.reject(new Error('not built')),
    )
    await fsp.chmod(temporary, 0o755)
    await fsp.rename(temporary, target)
  } catch (error) {
    await fsp.rm(temporary, { force: true })
    throw new SandboxError(
      'backend_unavailable',
      `cannot build the fast path's ${program.description} with ${compilerPath}: ${String(error)}`,
      {},
      { cause: error },
    )
  }
  return target
}

/**
 * Builds the sandbox init and returns its path. Without the C library where the architecture
 * allows it (see the source: its start-up cost more than the init's own work), else statically
 * linked (no loader to run at each start), else dynamically.
 */
export function buildSandboxInit(
  cacheDir: string,
  compilerPath: string = defaultCompilerPath,
): Promise<string> {
  return buildNative(
    {
      name: 'hutch-sandbox-init',
      description: 'sandbox init',
      sourcePath: sandboxInitSourcePath,
      buildFlags: initBuildFlags,
    },
    cacheDir,
    compilerPath,
  )
}

/** Builds the fork server's loop (a shared library) and returns its path. */
export function buildForkServerLoop(
  cacheDir: string,
  compilerPath: string = defaultCompilerPath,
): Promise<string> {
  return buildNative(
    {
      name: 'hutch-forkserver',
      description: 'fork server loop',
      sourcePath: forkServerLoopSourcePath,
      buildFlags: loopBuildFlags,
    },
    cacheDir,
    compilerPath,
  )
}
