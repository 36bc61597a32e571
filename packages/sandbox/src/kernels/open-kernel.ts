import { randomUUID } from 'node:crypto'
import type { NetworkMode } from '@hutch/protocol'
import type { Backend } from '../backends/backend.ts'
import type { OutputCaps } from '../files/output-files.ts'
import { pythonModuleRequirements } from '../host/requirements.ts'
import type { Logger } from '../logger.ts'
import type { Limits } from '../policy/limits.ts'
import type { Runtime } from '../runtimes/runtime.ts'
import type { InputFile } from '../sandbox.ts'
import { SandboxError } from '../sandbox-error.ts'
import type { Kernel, KernelLanguage } from './kernel.ts'
import { kernelLanguages } from './kernel.ts'
import type { KernelDriver } from './kernel-drivers.ts'
import { writeInputFiles } from './kernel-files.ts'
import type { KernelTimings } from './sandbox-kernel.ts'
import { SandboxKernel } from './sandbox-kernel.ts'

/** What a `Sandbox` lends its kernels. */
export interface KernelContext {
  backend: Backend
  drivers: () => Promise<Record<KernelLanguage, KernelDriver>>
  outputCaps: OutputCaps
  timings: KernelTimings
  logger: Logger
}

/** A kernel request, validated by the `Sandbox` as it validates runs. */
export interface ValidatedKernel {
  runtime: Runtime
  env: Record<string, string>
  limits: Limits
  network: NetworkMode
  files: readonly InputFile[]
  restoreState: Uint8Array | undefined
  preload: readonly string[] | undefined
}

/** Prepares a sandbox, fills its workdir and starts the language's driver in it. */
export async function openKernel(
  context: KernelContext,
  request: ValidatedKernel,
): Promise<Kernel> {
  const language = request.runtime.language
  if (!(kernelLanguages as readonly string[]).includes(language)) {
    throw new SandboxError(
      'unsupported_language',
      `${language} has no kernel; kernels exist for ${kernelLanguages.join(', ')}`,
    )
  }
  if (request.restoreState !== undefined && !(request.restoreState instanceof Uint8Array)) {
    throw new SandboxError('invalid_request', 'restoreState must be bytes')
  }
  const preload = validatePreload(language, request.preload)
  const driver = (await context.drivers())[language as KernelLanguage]
  const slot = await context.backend.prepare({ runId: randomUUID(), limits: request.limits })
  try {
    await writeInputFiles(slot, request.files)
  } catch (error) {
    await slot.release()
    throw error
  }
  return SandboxKernel.open(
    {
      id: slot.runId,
      language: driver.language,
      limits: request.limits,
      slot,
      policy: {
        mounts: request.runtime.mounts,
        files: [...request.runtime.files, ...driver.files],
        network: request.network,
        env: request.env,
        limits: request.limits,
      },
      argv: driver.argv(request.runtime),
      outputCaps: context.outputCaps,
      installedModules: pythonModuleRequirements.map((r) => r.module),
      timings: context.timings,
      logger: context.logger,
      release: () => slot.release(),
    },
    { restoreState: request.restoreState, preload },
  )
}

/** Most modules a kernel may preload. */
const maxPreload = 64
const moduleNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,99}(\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,9}$/

function validatePreload(
  language: string,
  preload: readonly string[] | undefined,
): readonly string[] | undefined {
  if (preload === undefined) return undefined
  if (!Array.isArray(preload) || preload.length > maxPreload) {
    throw new SandboxError(
      'invalid_request',
      `preload must be a list of at most ${maxPreload} modules`,
    )
  }
  if (preload.length === 0) return undefined
  if (language !== 'python') {
    throw new SandboxError(
      'invalid_request',
      `only python kernels preload modules, not ${language}`,
    )
  }
  const names: string[] = []
  for (const name of preload as readonly unknown[]) {
    if (typeof name !== 'string' || !moduleNamePattern.test(name)) {
      throw new SandboxError(
        'invalid_request',
        `preload: ${JSON.stringify(name)} is not a module name`,
      )
    }
    names.push(name)
  }
  return names
}
