/*
 * hutch-forkserver.so: the fork server's loop and a child's set-up, in C.
 *
 * forkserver.py imports the heavy libraries, then calls hutch_forkserver_serve() and never gets
 * control back in the fork server: this loop reads the server's commands, forks the children and
 * reports on them. In each child the call returns, once the child is a sandbox, and Python goes
 * on to wait for the request.
 *
 * Why C: every page a process writes after a fork is copied, by a page fault, for as long as the
 * other side still maps it. An interpreter writes many of them: each object it touches has its
 * reference count changed. Measured on a virtual machine where such a fault costs 15-60 us:
 * with this loop in Python, the fork server copied about 170 pages per child; in C, about 12.
 * A child's set-up in C copies few pages; what a child still copies before it is ready comes from
 * Python's own after-fork work and hooks, and its random generators and streams.
 *
 * Protocol, on the fork server's stdin (commands) and stdout (events), one per line:
 *   -> spawn ID NETWORK DISK_BYTES TMP_BYTES SHM_BYTES OPEN_FILES FILE_SIZE_BYTES
 *   -> stop
 *   <- {"ev":"ready","id":ID,"pid":P,"init":I}  pids in the fork server's pid namespace
 *   <- {"ev":"failed","id":ID,"reason":"..."}
 *   <- {"ev":"exit","id":ID,"code":C}           128+N for a death by signal N
 * ID is [A-Za-z0-9_.:-]{1,64}; NETWORK is none or loopback.
 *
 * A child, in order: a new pid namespace whose pid 1 is hutch-sandbox-init (started first, with
 * posix_spawn, which does not copy this process), then new mount, network, IPC and UTS
 * namespaces; a fresh /proc; it waits until the init has given up its rights, connects its three
 * streams to the server's socket and hides that socket; fresh /tmp, /dev/pts, /dev/shm and
 * workdir; the read-only files; hostname, loopback, a read-only /dev; a session of its own; its
 * limits; no capability, no-new-privs, the seccomp filter; its streams on fds 0-2 and the workdir
 * as its directory. What fails is reported on the ready pipe, and the child exits 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/** Set by forkserver.py; every string is a path inside the fork server's sandbox. */
struct hutch_forkserver_config {
    const char *socket_path;
    const char *socket_dir;
    const char *workdir;
    const char *init_path;
    unsigned int uid;
    int last_cap;
    int file_count;
    const char *const *file_targets;
    const char *const *file_sources;
    const struct sock_fprog *seccomp_none;
    const struct sock_fprog *seccomp_loopback;
};

/** What a child gets back: the pipe it says "ok" on once Python is ready, its request socket. */
struct hutch_child_start {
    int ready_fd;
    int request_fd;
};

struct spawn_spec {
    char id[72];
    int loopback;
    unsigned long long disk_bytes, tmp_bytes, shm_bytes, open_files, file_size_bytes;
};

struct child {
    pid_t pid;
    pid_t init;
    int ready_fd; /* -1 once it said ready or failed */
    char id[72];
};

static const struct hutch_forkserver_config *config;
static struct child *children;
static size_t child_count, child_capacity;
static pid_t *inits;
static size_t init_count, init_capacity;

/* ------------------------------------------------------------------------------------------ */
/* Events. */

static int write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t written = write(fd, data, size);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += written;
        size -= (size_t)written;
    }
    return 0;
}

/** Appends `text` to `out` as the inside of a JSON string; returns the new end. */
static char *json_escape(char *out, const char *end, const char *text) {
    for (; *text != '\0' && out + 7 < end; text++) {
        unsigned char c = (unsigned char)*text;
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            out += snprintf(out, (size_t)(end - out), "\\u%04x", c < 0x7f ? c : '?');
        } else {
            *out++ = (char)c;
        }
    }
    *out = '\0';
    return out;
}

static int send_failed(const char *id, const char *reason) {
    char escaped[2048];
    char line[2200];
    json_escape(escaped, escaped + sizeof escaped, reason);
    int size = snprintf(line, sizeof line, "{\"ev\":\"failed\",\"id\":\"%s\",\"reason\":\"%s\"}\n", id,
                        escaped);
    return write_all(1, line, (size_t)size);
}

/* ------------------------------------------------------------------------------------------ */
/* In the child: become a sandbox. A failure is written to the ready pipe; the child exits. */

static int ready_pipe = -1;

static void fail(const char *what) {
    char message[512];
    int size = snprintf(message, sizeof message, "failed: %s: %s", what, strerror(errno));
    if (size > 0) write_all(ready_pipe, message, strlen(message));
    _exit(125);
}

static void check(int result, const char *what) {
    if (result != 0) fail(what);
}

static void mount_or_fail(const char *source, const char *target, const char *type,
                          unsigned long flags, const char *data, const char *what) {
    check(mount(source, target, type, flags, data), what);
}

/** Waits until the sandbox's init (pid 1) has given up its rights: it does that last. */
static void await_init(void) {
    struct timespec start, now, pause = {0, 200 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    char status[4096];
    for (;;) {
        int fd = open("/proc/1/status", O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("read the init's status");
        ssize_t size = read(fd, status, sizeof status - 1);
        close(fd);
        if (size > 0) {
            status[size] = '\0';
            if (strstr(status, "\nNoNewPrivs:\t1\n") != NULL) return;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 5) {
            errno = ETIMEDOUT;
            fail("the sandbox init did not start");
        }
        nanosleep(&pause, NULL);
    }
}

static int connect_stream(const char *id, const char *stream) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(config->socket_path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        fail("connect");
    }
    strcpy(address.sun_path, config->socket_path);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");
    char hello[128];
    int size = snprintf(hello, sizeof hello, "{\"id\":\"%s\",\"stream\":\"%s\"}\n", id, stream);
    if (write_all(fd, hello, (size_t)size) != 0) fail("connect");
    return fd;
}

/** mkdir -p of the directories above `path`, mode 0755. */
static void make_parents(const char *path) {
    char copy[4096];
    if (strlen(path) >= sizeof copy) {
        errno = ENAMETOOLONG;
        fail("a file's directory");
    }
    strcpy(copy, path);
    for (char *slash = strchr(copy + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST) fail("a file's directory");
        *slash = '/';
    }
}

static void loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("loopback socket");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strcpy(request.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) fail("loopback flags");
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) fail("loopback up");
    close(fd);
}

static void drop_capabilities(void) {
    for (int cap = 0; cap <= config->last_cap; cap++) {
        check(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability");
    }
    check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities");
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    check((int)syscall(SYS_capset, &header, none), "capset");
}

static void set_limit(int resource, unsigned long long value, const char *what) {
    struct rlimit limit = {value, value};
    check(setrlimit(resource, &limit), what);
}

/** Everything a child does before its request. Returns its request socket. */
static int become_sandbox(const struct spawn_spec *spec) {
    check(unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare");
    mount_or_fail("none", "/", NULL, MS_REC | MS_PRIVATE, NULL, "mount /");
    mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "mount /proc");
    await_init();
    int streams[3];
    static const char *const names[3] = {"stdin", "stdout", "stderr"};
    for (int i = 0; i < 3; i++) streams[i] = connect_stream(spec->id, names[i]);
    /* The server's socket is gone from this sandbox's view, and a fresh /tmp covers the fork
     * server's own files: user code can reach neither. */
    check(umount2(config->socket_dir, MNT_DETACH), "hide the server socket");
    int sources[64];
    if (config->file_count > 64) {
        errno = E2BIG;
        fail("files");
    }
    for (int i = 0; i < config->file_count; i++) {
        sources[i] = open(config->file_sources[i], O_PATH | O_CLOEXEC);
        if (sources[i] < 0) fail("open a file for the sandbox");
    }
    char data[256];
    snprintf(data, sizeof data, "size=%llu,mode=1777", spec->tmp_bytes);
    mount_or_fail("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, data, "mount /tmp");
    mount_or_fail("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620", "mount /dev/pts");
    snprintf(data, sizeof data, "size=%llu,mode=1777", spec->shm_bytes);
    mount_or_fail("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, data, "mount /dev/shm");
    snprintf(data, sizeof data, "size=%llu,mode=0700,uid=%u,gid=%u", spec->disk_bytes, config->uid,
             config->uid);
    mount_or_fail("tmpfs", config->workdir, "tmpfs", MS_NOSUID | MS_NODEV, data, "mount the workdir");
    for (int i = 0; i < config->file_count; i++) {
        /* Bound read-only, as bubblewrap's --ro-bind-data gives them on the slow path: a mount
         * costs less than a copy of the file into every sandbox. */
        const char *target = config->file_targets[i];
        make_parents(target);
        int created = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
        if (created < 0) fail("a file's mount point");
        close(created);
        char source[64];
        snprintf(source, sizeof source, "/proc/self/fd/%d", sources[i]);
        mount_or_fail(source, target, NULL, MS_BIND, NULL, "bind a file");
        mount_or_fail("none", target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      NULL, "make a file read-only");
        close(sources[i]);
    }
    check(sethostname("hutch", 5), "sethostname");
    if (spec->loopback) loopback_up();
    /* Sibling sandboxes share /dev; nobody writes to it but through its device nodes. */
    mount_or_fail("none", "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  NULL, "make /dev read-only");
    if (setsid() < 0) fail("setsid");
    set_limit(RLIMIT_CORE, 0, "core limit");
    struct rlimit files;
    check(getrlimit(RLIMIT_NOFILE, &files), "open files limit");
    set_limit(RLIMIT_NOFILE, spec->open_files < files.rlim_max ? spec->open_files : files.rlim_max,
              "open files limit");
    set_limit(RLIMIT_FSIZE, spec->file_size_bytes, "file size limit");
    drop_capabilities();
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
    const struct sock_fprog *filter = spec->loopback ? config->seccomp_loopback : config->seccomp_none;
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter, 0, 0), "seccomp");
    /* dup2 clears close-on-exec on the copy: fds 0-2 are what a program it execs inherits. */
    for (int i = 0; i < 3; i++) {
        if (dup2(streams[i], i) < 0) fail("dup2");
    }
    close(streams[1]);
    close(streams[2]);
    check(chdir(config->workdir), "chdir to the workdir");
    return streams[0];
}

/* ------------------------------------------------------------------------------------------ */
/* In the fork server. */

static int parse_spec(char *line, struct spawn_spec *spec) {
    char network[16];
    int consumed = 0;
    memset(spec, 0, sizeof *spec);
    if (sscanf(line, "spawn %64s %15s %llu %llu %llu %llu %llu%n", spec->id, network, &spec->disk_bytes,
               &spec->tmp_bytes, &spec->shm_bytes, &spec->open_files, &spec->file_size_bytes,
               &consumed) != 7 ||
        line[consumed] != '\0') {
        return -1;
    }
    for (const char *c = spec->id; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.' || *c == ':')) {
            return -1;
        }
    }
    if (strcmp(network, "none") == 0) {
        spec->loopback = 0;
    } else if (strcmp(network, "loopback") == 0) {
        spec->loopback = 1;
    } else {
        return -1;
    }
    return 0;
}

static int grow(void **array, size_t *capacity, size_t count, size_t size) {
    if (count < *capacity) return 0;
    size_t wanted = *capacity == 0 ? 64 : *capacity * 2;
    void *grown = realloc(*array, wanted * size);
    if (grown == NULL) return -1;
    *array = grown;
    *capacity = wanted;
    return 0;
}

static void forget_init(pid_t pid) {
    for (size_t i = 0; i < init_count; i++) {
        if (inits[i] == pid) {
            inits[i] = inits[--init_count];
            return;
        }
    }
}

/**
 * Forks one child. Returns 1 in the child (set up, `start` filled), 0 in the fork server (the
 * child is tracked, or a failure reported), -1 when the fork server cannot go on.
 */
static int spawn_child(const struct spawn_spec *spec, int own_pid_ns, int signal_fd,
                       const sigset_t *original_mask, struct hutch_child_start *start) {
    if (grow((void **)&children, &child_capacity, child_count, sizeof *children) != 0 ||
        grow((void **)&inits, &init_capacity, init_count, sizeof *inits) != 0) {
        return send_failed(spec->id, "out of memory");
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "pipe: %s", strerror(errno));
        return send_failed(spec->id, reason);
    }
    /* A new pid namespace: its first process, the init, is its pid 1; the program's process,
     * forked next, its pid 2. Then back to our own namespace for the next child. */
    if (unshare(CLONE_NEWPID) != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "unshare pid: %s", strerror(errno));
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return send_failed(spec->id, reason);
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
    posix_spawn_file_actions_adddup2(&actions, 0, 1);
    posix_spawn_file_actions_adddup2(&actions, 0, 2);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setsigmask(&attributes, original_mask);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    char *const init_argv[] = {"hutch-sandbox-init", NULL};
    char *const no_env[] = {NULL};
    pid_t init = 0;
    int spawn_error = posix_spawn(&init, config->init_path, &actions, &attributes, init_argv, no_env);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    pid_t pid = -1;
    int fork_error = 0;
    if (spawn_error == 0) {
        pid = fork();
        fork_error = errno;
    }
    if (pid == 0) {
        /* The child: nothing of the fork server's stays open, its signals are the default. */
        ready_pipe = pipe_fds[1];
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        for (int fd = 0; fd < 3; fd++) dup2(null, fd);
        close(null);
        /* The loop's own descriptors. Those the libraries hold stay open (matplotlib closes its
         * fonts in an at-fork hook); the program's process closes every one when its request
         * comes, before user code runs. */
        close(pipe_fds[0]);
        close(signal_fd);
        close(own_pid_ns);
        for (size_t i = 0; i < child_count; i++) {
            if (children[i].ready_fd >= 0) close(children[i].ready_fd);
        }
        sigprocmask(SIG_SETMASK, original_mask, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("pdeathsig");
        start->ready_fd = ready_pipe;
        start->request_fd = become_sandbox(spec);
        return 1;
    }
    if (setns(own_pid_ns, CLONE_NEWPID) != 0) return -1;
    close(pipe_fds[1]);
    if (spawn_error != 0 || pid < 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s: %s", spawn_error != 0 ? "start the init" : "fork",
                 strerror(spawn_error != 0 ? spawn_error : fork_error));
        close(pipe_fds[0]);
        if (spawn_error == 0) {
            kill(init, SIGKILL);
            inits[init_count++] = init;
        }
        return send_failed(spec->id, reason);
    }
    struct child *child = &children[child_count++];
    child->pid = pid;
    child->init = init;
    child->ready_fd = pipe_fds[0];
    strcpy(child->id, spec->id);
    inits[init_count++] = init;
    return 0;
}

/** A child said it is ready, or why it is not. */
static int child_ready(struct child *child) {
    char message[1024];
    ssize_t size;
    do {
        size = read(child->ready_fd, message, sizeof message - 1);
    } while (size < 0 && errno == EINTR);
    close(child->ready_fd);
    child->ready_fd = -1;
    message[size > 0 ? size : 0] = '\0';
    if (strcmp(message, "ok\n") == 0) {
        char line[256];
        int length = snprintf(line, sizeof line, "{\"ev\":\"ready\",\"id\":\"%s\",\"pid\":%d,\"init\":%d}\n",
                              child->id, (int)child->pid, (int)child->init);
        return write_all(1, line, (size_t)length);
    }
    char *reason = message;
    while (*reason == ' ' || *reason == '\n') reason++;
    for (char *end = reason + strlen(reason); end > reason && (end[-1] == '\n' || end[-1] == ' ');) {
        *--end = '\0';
    }
    return send_failed(child->id, *reason != '\0' ? reason : "the child died");
}

/** Reaps what ended; a program's end kills its init and is reported. */
static int reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return 0;
        forget_init(pid);
        for (size_t i = 0; i < child_count; i++) {
            if (children[i].pid != pid) continue;
            struct child child = children[i];
            children[i] = children[--child_count];
            /* The program is gone: its init goes too, and whatever it left behind with it. */
            kill(child.init, SIGKILL);
            if (child.ready_fd >= 0) close(child.ready_fd);
            int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
            char line[160];
            int length = snprintf(line, sizeof line, "{\"ev\":\"exit\",\"id\":\"%s\",\"code\":%d}\n",
                                  child.id, code & 0xff);
            if (write_all(1, line, (size_t)length) != 0) return -1;
            break;
        }
    }
}

/**
 * The fork server's loop. Returns 0 when told to stop or when the server closes the connection,
 * -1 on an error it cannot go on from, and 1 in a child, which is then a sandbox waiting for its
 * request: `start` says where.
 */
int hutch_forkserver_serve(const struct hutch_forkserver_config *settings, struct hutch_child_start *start) {
    config = settings;
    int own_pid_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own_pid_ns < 0) return -1;
    sigset_t chld, original_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, &original_mask) != 0) return -1;
    sigdelset(&original_mask, SIGCHLD);
    int signal_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) return -1;
    char commands[8192];
    size_t buffered = 0;
    struct pollfd *polled = NULL;
    size_t polled_capacity = 0;
    for (;;) {
        if (grow((void **)&polled, &polled_capacity, child_count + 2, sizeof *polled) != 0) return -1;
        size_t count = 0;
        polled[count++] = (struct pollfd){.fd = 0, .events = POLLIN};
        polled[count++] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
        for (size_t i = 0; i < child_count; i++) {
            if (children[i].ready_fd >= 0) {
                polled[count++] = (struct pollfd){.fd = children[i].ready_fd, .events = POLLIN};
            }
        }
        if (poll(polled, count, -1) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (polled[1].revents != 0) {
            struct signalfd_siginfo info;
            while (read(signal_fd, &info, sizeof info) > 0) {
            }
        }
        for (size_t p = 2; p < count; p++) {
            if (polled[p].revents == 0) continue;
            for (size_t i = 0; i < child_count; i++) {
                if (children[i].ready_fd == polled[p].fd) {
                    if (child_ready(&children[i]) != 0) return 0;
                    break;
                }
            }
        }
        if (reap() != 0) return 0;
        if (polled[0].revents == 0) continue;
        ssize_t size = read(0, commands + buffered, sizeof commands - 1 - buffered);
        if (size < 0 && errno == EINTR) continue;
        if (size <= 0) return 0;
        buffered += (size_t)size;
        char *line = commands;
        char *newline;
        while ((newline = memchr(line, '\n', buffered - (size_t)(line - commands))) != NULL) {
            *newline = '\0';
            if (strcmp(line, "stop") == 0) return 0;
            struct spawn_spec spec;
            if (parse_spec(line, &spec) != 0) {
                char id[72] = "";
                sscanf(line, "spawn %64[A-Za-z0-9_.:-]", id);
                if (send_failed(id, "a malformed spawn command") != 0) return 0;
            } else {
                int spawned = spawn_child(&spec, own_pid_ns, signal_fd, &original_mask, start);
                /* A child returns as it is: freeing would only copy more pages. */
                if (spawned != 0) return spawned;
            }
            line = newline + 1;
        }
        buffered -= (size_t)(line - commands);
        memmove(commands, line, buffered);
        if (buffered == sizeof commands - 1) return -1;
    }
}
