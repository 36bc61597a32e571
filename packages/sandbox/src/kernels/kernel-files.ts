import type { Slot } from '../backends/backend.ts'
import { copyHostFileInto, writeFileInto } from '../files/write-files.ts'
import type { InputFile } from '../sandbox.ts'

/** Writes input files into a kernel's workdir as the sandbox's own user. */
export async function writeInputFiles(
  slot: Pick<Slot, 'workdir' | 'uid' | 'gid'>,
  files: readonly InputFile[],
): Promise<void> {
  const owner = { uid: slot.uid, gid: slot.gid }
  for (const file of files) {
    if ('hostPath' in file) await copyHostFileInto(slot.workdir, file.path, file.hostPath, owner)
    else if ('body' in file) await writeFileInto(slot.workdir, file.path, file.body, owner)
    else await writeFileInto(slot.workdir, file.path, file.content, owner)
  }
}
