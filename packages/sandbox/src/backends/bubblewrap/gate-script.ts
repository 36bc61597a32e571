/** Per-process limits the launcher sets before it becomes bwrap. */
export interface GateLimits {
  /** RLIMIT_NOFILE; undefined raises the soft limit to the hard one. */
  openFiles: number | undefined
  fileSizeBytes: number
  /** RLIMIT_CPU in seconds; undefined leaves it unlimited. */
  cpuSeconds: number | undefined
}

/** The descriptor on which the launcher waits for the word to go. */
export const gateFd = 4

/**
 * The launcher: a bash that waits (on descriptor 4) until the server has moved it into its
 * cgroup, applies `redirects`, closes every descriptor it inherited but `keptFds`, sets
 * per-process limits, and becomes its arguments (bwrap) with an empty environment.
 */
export function gateScript(
  limits: GateLimits,
  keptFds: readonly number[],
  redirects: readonly string[] = [],
): string {
  const fileSizeKiB = Math.ceil(limits.fileSizeBytes / 1024)
  // bwrap itself needs a few descriptors while it sets the sandbox up.
  const openFiles =
    limits.openFiles === undefined ? '$(ulimit -Hn)' : String(Math.max(limits.openFiles, 16))
  const cpu = limits.cpuSeconds === undefined ? '' : ` && ulimit -t ${limits.cpuSeconds}`
  return [
    `read -r _ <&${gateFd} || exit 125`,
    `exec ${gateFd}<&-`,
    // Descriptors moved to the numbers the program expects (`60<&9`), before the others close.
    ...(redirects.length === 0 ? [] : [`exec ${redirects.join(' ')} || exit 125`]),
    'for f in /proc/self/fd/*; do f=${f##*/}',
    `  case " ${keptFds.join(' ')} " in *" $f "*) ;; *) eval "exec $f>&-" 2>/dev/null ;; esac`,
    'done',
    `ulimit -c 0 && ulimit -n ${openFiles} && ulimit -f ${fileSizeKiB}${cpu} || exit 125`,
    'exec -c "$@"',
  ].join('\n')
}
