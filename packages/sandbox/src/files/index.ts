export { detectMediaType, mediaTypeSniffBytes } from './media-type.ts'
export {
  collectOutputFiles,
  maxWalkDepth,
  snapshotTree,
  type CollectedFile,
  type CollectedFileContent,
  type CollectOutputOptions,
  type CollectOutputResult,
  type OutputCaps,
  type OutputSink,
  type SkippedEntry,
  type SnapshotCaps,
  type TreeSnapshot,
  type TreeSnapshotEntry,
} from './output-files.ts'
export { maxNameBytes, maxPathBytes, validateRelativePath } from './paths.ts'
export { removeTree } from './remove-tree.ts'
export type { SkipReason } from './tree-walk.ts'
export {
  copyHostFileInto,
  openHostFile,
  writeFileInto,
  type WriteFileOptions,
  type WriteFileResult,
} from './write-files.ts'
export {
  childPath,
  createFileFlags,
  directoryFlags,
  errnoCode,
  readDirectoryEntries,
  readFileFlags,
  sameFile,
} from './descriptors.ts'
export { decodeSafeName } from './paths.ts'
