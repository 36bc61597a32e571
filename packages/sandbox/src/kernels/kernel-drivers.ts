import fs from 'node:fs/promises'
import type { SandboxFile } from '../runtimes/matplotlib-font-cache.ts'
import type { Runtime } from '../runtimes/runtime.ts'
import type { KernelLanguage } from './kernel.ts'

/** Where the driver scripts appear inside a kernel's sandbox (its private /tmp). */
export const sandboxKernelDir = '/tmp/.hutch-kernel'

/** The driver of one language: its scripts and the argv that runs them. */
export interface KernelDriver {
  readonly language: KernelLanguage
  readonly files: readonly SandboxFile[]
  argv(runtime: Runtime): string[]
}

const assets: Record<KernelLanguage, readonly string[]> = {
  python: ['kernel-python.py'],
  bash: ['kernel-bash.sh', 'kernel-bash-loop.sh', 'kernel-bash-cell.sh'],
  javascript: ['kernel-javascript.cjs'],
}

/** Absolute host path of a driver script among the package's assets. */
export function kernelAssetPath(name: string): string {
  return new URL(`../../assets/${name}`, import.meta.url).pathname
}

/** Reads the driver scripts of every language, once per `Sandbox`. */
export async function loadKernelDrivers(): Promise<Record<KernelLanguage, KernelDriver>> {
  const load = async (language: KernelLanguage): Promise<KernelDriver> => {
    const names = assets[language]
    const files = await Promise.all(
      names.map(async (name) => ({
        target: `${sandboxKernelDir}/${name}`,
        content: await fs.readFile(kernelAssetPath(name)),
      })),
    )
    const main = `${sandboxKernelDir}/${names[0] ?? ''}`
    return { language, files, argv: (runtime) => runtime.command(main, []) }
  }
  return {
    python: await load('python'),
    bash: await load('bash'),
    javascript: await load('javascript'),
  }
}
