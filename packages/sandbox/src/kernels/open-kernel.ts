import { randomUUID } from 'node:crypto'
import type { NetworkMode } from '@hutch/protocol'
import type { Backend } from '../backends/backend.ts'
import type { OutputCaps } from '../files/output-files.ts'
import { copyHostFileInto, writeFileInto } from '../files/write-files.ts'
import { pythonModuleRequirements } from '../host/requirements.ts'
import type { Logger } from '../logger.ts'
import type { Limits } from '../policy/limits.ts'
import type { Runtime } from '../runtimes/runtime.ts'
import type { InputFile } from '../sandbox.ts'
import { SandboxError } from '../sandbox-error.ts'
import type { Kernel, KernelLanguage } from './kernel.ts'
import { kernelLanguages } from './kernel.ts'
import type { KernelDriver } from './kernel-drivers.ts'
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
  const driver = (await context.drivers())[language as KernelLanguage]
  const slot = await context.backend.prepare({ runId: randomUUID(), limits: request.limits })
  try {
    const owner = { uid: slot.uid, gid: slot.gid }
    for (const file of request.files) {
      if ('hostPath' in file) await copyHostFileInto(slot.workdir, file.path, file.hostPath, owner)
      else if ('body' in file) await writeFileInto(slot.workdir, file.path, file.body, owner)
      else await writeFileInto(slot.workdir, file.path, file.content, owner)
    }
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
    request.restoreState,
  )
}
