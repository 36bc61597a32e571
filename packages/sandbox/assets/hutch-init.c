/*
 * hutch-sandbox-init: pid 1 of a fast-path sandbox.
 *
 * The fork server starts it right after it unshares a new pid namespace, so that it becomes that
 * namespace's pid 1, and then forks the process that will run the program into the same namespace
 * (pid 2). Being a small program rather than a fork of the fork server, it costs neither a fork of
 * a large interpreter nor that interpreter's memory.
 *
 * It never runs user code, but shares the program's user and sits in the fork server's mount
 * namespace, so before the program's process is forked it:
 *   - becomes not dumpable: the program can neither trace it, write its memory nor follow its
 *     /proc/1/root, cwd or fd links;
 *   - takes a mount namespace of its own in which an empty tmpfs covers /tmp (the fork server's
 *     socket and files);
 *   - gives up every capability and sets no-new-privs, last: the program waits for that
 *     (/proc/1/status) before it takes a request.
 * Then it reaps whatever is orphaned onto it until it is killed. When the program ends, the fork
 * server kills it, and with it whatever the program left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static void fail(int code) { _exit(code); }

int main(void) {
  if (getpid() != 1) fail(120);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail(121);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(121);

  if (unshare(CLONE_NEWNS) != 0) fail(122);
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(122);
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0555") != 0)
    fail(122);
  if (chdir("/") != 0) fail(122);

  // Nothing of the fork server's stays open here (posix_spawn left only 0-2, on /dev/null).
  if (syscall(SYS_close_range, 3, ~0U, 0) != 0) {
    for (int fd = 3; fd < 1024; fd++) close(fd);
  }

  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail(123);
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail(123);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
  if (syscall(SYS_capset, &header, data) != 0) fail(123);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(123);

  sigset_t children;
  sigemptyset(&children);
  sigaddset(&children, SIGCHLD);
  sigprocmask(SIG_BLOCK, &children, NULL);
  for (;;) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    sigwaitinfo(&children, NULL);
  }
}
