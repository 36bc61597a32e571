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
 *
 * It runs without the C library where it can (x86-64 and arm64, built with -nostdlib): it is
 * started for every sandbox, and the library's start-up alone cost it more than its own work
 * (seen here, on a virtual AMD CPU: glibc sizes the CPU caches with dozens of cpuid
 * instructions, each a trip to the hypervisor). Elsewhere it is built against the library.
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#if defined(HUTCH_INIT_FREESTANDING)
/* Raw system calls: a negative result is -errno. */
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
#if defined(__x86_64__)
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  ret = x0;
#else
#error "a freestanding build needs this architecture's system call instruction"
#endif
  return ret;
}
#define SYS(n, a, b, c, d, e) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define FAILED(result) ((result) < 0)
#define IS_EINVAL(result) ((result) == -22)
static void fail(int code) {
  for (;;) sys6(SYS_exit_group, code, 0, 0, 0, 0, 0);
}
#else
#include <errno.h>
#include <unistd.h>
#define SYS(n, a, b, c, d, e) syscall((n), (a), (b), (c), (d), (e))
#define FAILED(result) ((result) != 0)
#define IS_EINVAL(result) (errno == EINVAL)
static void fail(int code) { _exit(code); }
#endif

static void run(void) {
  if (SYS(SYS_getpid, 0, 0, 0, 0, 0) != 1) fail(120);
  if (FAILED(SYS(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0))) fail(121);
  if (FAILED(SYS(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))) fail(121);

  if (FAILED(SYS(SYS_unshare, CLONE_NEWNS, 0, 0, 0, 0))) fail(122);
  if (FAILED(SYS(SYS_mount, "none", "/", 0, MS_REC | MS_PRIVATE, 0))) fail(122);
  if (FAILED(SYS(SYS_mount, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                 "size=4k,mode=0555")))
    fail(122);
  if (FAILED(SYS(SYS_chdir, "/", 0, 0, 0, 0))) fail(122);

  // Nothing of the fork server's stays open here (posix_spawn left only 0-2, on /dev/null).
  if (FAILED(SYS(SYS_close_range, 3, ~0U, 0, 0, 0))) {
    for (int fd = 3; fd < 1024; fd++) SYS(SYS_close, fd, 0, 0, 0, 0);
  }

  for (int cap = 0; cap <= 63; cap++) {
    long dropped = SYS(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (FAILED(dropped) && !IS_EINVAL(dropped)) fail(123);
  }
  if (FAILED(SYS(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))) fail(123);
  struct __user_cap_header_struct header;
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) data[i].effective = data[i].permitted = data[i].inheritable = 0;
  if (FAILED(SYS(SYS_capset, &header, data, 0, 0, 0))) fail(123);
  if (FAILED(SYS(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))) fail(123);

  // SIGCHLD (17) blocked, and waited for: the kernel's sigset, 64 bits.
  unsigned long children = 1UL << (SIGCHLD - 1);
  SYS(SYS_rt_sigprocmask, SIG_BLOCK, &children, 0, sizeof children, 0);
  for (;;) {
    while (SYS(SYS_wait4, -1, 0, WNOHANG, 0, 0) > 0) {
    }
    SYS(SYS_rt_sigtimedwait, &children, 0, 0, sizeof children, 0);
  }
}

#if defined(HUTCH_INIT_FREESTANDING)
// The kernel enters here with no return address pushed: the stack is realigned for the compiler.
#if defined(__x86_64__)
__attribute__((force_align_arg_pointer))
#endif
void _start(void) {
  run();
}
#else
int main(void) {
  run();
  return 0;
}
#endif
