"""hutch fork server ("zygote"): one long-lived interpreter that never runs user code.

It runs inside its own bubblewrap sandbox (own user, pid, mount and network namespaces, no
capability outside them), imports the heavy libraries once, and forks one child per prepared
sandbox. Each child, before any request reaches it, takes new mount, network, IPC and UTS
namespaces (and a new pid namespace, as pid 2: pid 1 is hutch-init.c, which starts first),
mounts a fresh /proc, /tmp, /dev/shm and a workdir of bounded size, connects its stdin, stdout and stderr to the hutch server, hides the
server's socket, drops every capability, sets no-new-privs and loads the seccomp filter. Then it
waits for its one request: run Python in this interpreter (its imports are already done), or exec
another program.

Protocol with the server, on this process's stdin (commands) and stdout (events), one JSON
object per line:
  -> {"op": "spawn", "id", "network", "diskBytes", "tmpBytes", "shmBytes", "openFiles", "fileSizeBytes"}
  <- {"ev": "ready", "id", "pid", "init"} the program's and its init's pids in this process's pid namespace
  <- {"ev": "failed", "id", "reason"}    the child could not set itself up
  <- {"ev": "exit", "id", "code"}        128+N for a death by signal N, as bwrap's init reports
  -> {"op": "stop"}
Each child connects three times to the server's socket, sending {"id", "stream"} on each first
("stdin", "stdout", "stderr"). The request arrives on the stdin connection: 4 bytes of big-endian
length, then JSON {"mode": "python"|"exec", "argv", "env", "cpuSeconds"}; what follows is the
program's stdin.
"""

import ctypes
import errno
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import time

CONFIG_PATH = "/tmp/.hutch/config.json"
if sys.argv[1:] != ["clean"]:
    # Start again with an empty environment: every sandbox's pid 1 is a fork of this process, and
    # /proc/1/environ must show nothing (bwrap sets PWD whatever it is told).
    os.execve(sys.executable, [sys.executable, "-I", os.path.abspath(__file__), "clean"], {})
with open(CONFIG_PATH, "rb") as _file:
    CONFIG = json.load(_file)
os.environ.update(CONFIG.get("env", {}))
SOCKET_PATH = CONFIG["socket"]
SOCKET_DIR = os.path.dirname(SOCKET_PATH)
WORKDIR = CONFIG.get("workdir", "/work")
SANDBOX_UID = CONFIG.get("uid", 1000)
INIT_PATH = CONFIG["init"]
# Files each child sees read-only in its fresh /tmp (the matplotlib font cache): where each goes,
# and a copy of it in this sandbox that children bind (bubblewrap's --ro-bind-data gives us an
# unlinked file, which cannot be the source of a bind mount).
FILES = []
os.makedirs("/tmp/.hutch-files", mode=0o755, exist_ok=True)
for _index, (_target, _path) in enumerate(CONFIG.get("files", {}).items()):
    _copy = f"/tmp/.hutch-files/{_index}"
    with open(_path, "rb") as _file, open(_copy, "wb") as _out:
        _out.write(_file.read())
    os.chmod(_copy, 0o444)
    FILES.append((_target, _copy))

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source, target, fstype, flags, data=None):
    check(
        libc.mount(
            source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            flags,
            None if data is None else data.encode(),
        ),
        f"mount {target}",
    )


def send_event(event):
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(1, data):]


# ---------------------------------------------------------------------------------------------
# In the child: become a sandbox, then wait for the request.


def loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl_ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl_ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def fcntl_ioctl(fd, request, arg):
    import fcntl

    return fcntl.ioctl(fd, request, arg)


# What a child needs to give up its rights, built once here rather than in each child (defining
# a ctypes structure costs a fork's child a fraction of a millisecond).
class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


LAST_CAP = int(open("/proc/sys/kernel/cap_last_cap").read())
CAP_HEADER = CapHeader(0x20080522, 0)
NO_CAPS = (CapData * 2)()
SECCOMP_BUFFERS = {}
for _network, _path in CONFIG.get("seccomp", {}).items():
    with open(_path, "rb") as _file:
        _program = _file.read()
    SECCOMP_BUFFERS[_network] = ctypes.create_string_buffer(_program, len(_program))
SECCOMP_PROGRAMS = {
    network: SockFprog(len(buffer) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    for network, buffer in SECCOMP_BUFFERS.items()
}


def drop_capabilities():
    for cap in range(LAST_CAP + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    check(libc.capset(ctypes.byref(CAP_HEADER), NO_CAPS), "capset")


def load_seccomp(network):
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(SECCOMP_PROGRAMS[network]), 0, 0), "seccomp")


def connect(child_id, stream):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(SOCKET_PATH)
    sock.sendall((json.dumps({"id": child_id, "stream": stream}) + "\n").encode())
    return sock


def await_init():
    """Waits until the sandbox's init (pid 1, hutch-init.c) has given up its rights: it does that
    last, after it made itself not dumpable and covered the fork server's files."""
    deadline = time.monotonic() + 5
    while True:
        with open("/proc/1/status", "rb") as status:
            if b"\nNoNewPrivs:\t1\n" in status.read():
                return
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, "the sandbox init did not start")
        time.sleep(0.0002)


def become_sandbox(spec):
    """Everything a child does before its request: namespaces, mounts, identity, filters."""
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    await_init()
    streams = {name: connect(spec["id"], name) for name in ("stdin", "stdout", "stderr")}
    # The server's socket is gone from this sandbox's view, and a fresh /tmp covers the fork
    # server's own files: user code can reach neither.
    check(libc.umount2(SOCKET_DIR.encode(), MNT_DETACH), "hide the server socket")
    # Reached through these once the fresh /tmp covers them.
    sources = [(target, os.open(source, os.O_PATH | os.O_CLOEXEC)) for target, source in FILES]
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmpBytes']},mode=1777")
    mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['shmBytes']},mode=1777")
    mount(
        "tmpfs",
        WORKDIR,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={spec['diskBytes']},mode=0700,uid={SANDBOX_UID},gid={SANDBOX_UID}",
    )
    for target, source in sources:
        # Bound read-only, as bubblewrap's --ro-bind-data gives them on the slow path: a mount
        # costs less than a copy of the file into every sandbox.
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444))
        mount(f"/proc/self/fd/{source}", target, None, MS_BIND)
        mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.close(source)
    socket.sethostname("hutch")
    if spec["network"] == "loopback":
        loopback_up()
    # Sibling sandboxes share /dev; nobody writes to it but through its device nodes.
    mount("none", "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.setsid()
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    open_files = min(spec["openFiles"], resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fileSizeBytes"], spec["fileSizeBytes"]))
    drop_capabilities()
    load_seccomp(spec["network"])
    return streams


def receive_request(sock):
    """Input files, then the request. Files arrive as frames: {"op": "open", "path"}, then
    {"op": "data", "size"} followed by that many bytes, repeated, then {"op": "close"}; {"op":
    "sync"} asks for "ok" (or the first error) on the same connection. The workdir is fresh and
    nothing but this code has touched it: plain calls are safe here."""

    def exactly(count):
        chunks = []
        while count > 0:
            chunk = sock.recv(min(count, 1 << 20))
            if not chunk:
                raise EOFError("the server closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def frame():
        (length,) = struct.unpack(">I", exactly(4))
        return json.loads(exactly(length))

    os.umask(0o022)
    current = None
    failure = None
    failed = False
    written = {}
    while True:
        message = frame()
        op = message["op"]
        if op == "run":
            if failed:
                # The inputs are not all there: the program must not run.
                os._exit(125)
            return message
        if op == "open":
            target = os.path.join(WORKDIR, message["path"])
            try:
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                if os.path.lexists(target):
                    os.unlink(target)
                current = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                current_path = message["path"]
            except OSError as error:
                failure = failure or f"{message['path']}: {error.strerror}"
                current = None
        elif op == "data":
            data = exactly(message["size"])
            if current is not None:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(current, view):]
                except OSError as error:
                    failure = failure or f"{error.strerror}"
                    os.close(current)
                    current = None
        elif op == "close":
            if current is not None:
                stat = os.fstat(current)
                written[current_path] = [stat.st_mtime_ns // 1_000_000_000, stat.st_mtime_ns % 1_000_000_000]
                os.close(current)
                current = None
        elif op == "sync":
            # The modification times of the files as written: the server's snapshot of the
            # workdir before the program, which may already have been asked for, runs.
            if failure is None:
                sock.sendall(b"ok " + json.dumps(written).encode() + b"\n")
            else:
                sock.sendall(f"error: {failure}\n".encode())
                failed = True
            failure = None


def reseed():
    """Forked children share the fork server's generator states: give each its own."""
    import random

    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def python_streams():
    """sys.stdin, stdout and stderr on fds 0-2, as `python3 -u` has them."""
    import io

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def run_script(script):
    """Runs a script file as `python3 script` does (the module runpy.run_path makes for a file),
    without runpy's importer lookups: in a forked child they cost milliseconds of first-touched
    pages. Anything but a regular file (a directory, a zip archive) goes through runpy."""
    import importlib.machinery
    import runpy
    import stat
    import types

    if not stat.S_ISREG(os.stat(script).st_mode):
        runpy.run_path(script, run_name="__main__")
        return
    with io.open_code(script) as file:
        source = file.read()
    if source[:2] == b"PK":
        runpy.run_path(script, run_name="__main__")
        return
    code = compile(source, script, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__cached__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def run_python(request):
    import atexit
    import threading
    import traceback

    script = request["argv"][0]
    sys.argv = list(request["argv"])
    # As `ps` would show `python3 -u script args` on the slow path.
    set_title(b"\0".join(arg.encode() for arg in [sys.executable, "-u", *sys.argv]))
    sys.path[0] = os.path.dirname(script)
    code = 0
    try:
        run_script(script)
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException as error:  # noqa: BLE001 - the script's own uncaught exception
        tb = error.__traceback__
        # Show the traceback as `python3 script.py` would: from the script's frame down.
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        traceback.print_exception(type(error), error, tb if tb is not None else error.__traceback__)
        code = 1
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    report_done(code & 0xFF)


def report_done(code):
    """Ends the program without waiting for this process's teardown, which takes milliseconds
    for an interpreter this size: close stdout and stderr, tell the server the exit code on the
    stdin connection, and wait for the server to freeze the run's cgroup, read the results and
    kill it. Should the server not, exit after a while as usual."""
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.write(0, f"\ndone {code}\n".encode())
    except OSError:
        os._exit(code)
    time.sleep(10)
    os._exit(code)


def child_main(spec, ready_fd):
    """Pid 2 of the new sandbox, the process that runs the program: sets the sandbox up, says so
    on `ready_fd`, then waits for its request. Pid 1 is the sandbox's init (hutch-init.c), which
    reaps orphans; the fork server, this process's parent, reports how it ended."""
    try:
        streams = become_sandbox(spec)
        prepare_program(streams)
    except BaseException as error:  # noqa: BLE001
        os.write(ready_fd, ("failed: " + str(error)).encode()[:1000])
        os._exit(125)
    os.write(ready_fd, b"ok\n")
    os.close(ready_fd)
    run_program(streams["stdin"])


def set_title(title):
    """Shows `title` as this process's /proc/PID/cmdline (the fork server's argv otherwise)."""
    fields = open("/proc/self/stat", "rb").read().rsplit(b")", 1)[1].split()
    # Fields 48 and 49 of stat (arg_start, arg_end); the split starts at field 3.
    start, end = int(fields[45]), int(fields[46])
    size = end - start
    title = title[: size - 1]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, title, len(title))


def prepare_program(streams):
    """All the program's process can do before it knows its request, so that the request only
    waits for what depends on it: its streams on fds 0-2, its workdir, its own random generators
    (the pages they touch are copied now, not while the program runs) and Python's streams."""
    for number, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        os.dup2(streams[name].fileno(), number, inheritable=True)
        # dup2 onto its own number changes nothing: a socket already at 0-2 keeps O_CLOEXEC.
        os.set_inheritable(number, True)
    os.chdir(WORKDIR)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    reseed()
    python_streams()


def run_program(request_socket):
    try:
        request = receive_request(request_socket)
    except BaseException:  # noqa: BLE001 - released unused, or the server went away
        os._exit(125)
    os.closerange(3, 65536)
    import resource

    cpu_seconds = request.get("cpuSeconds")
    if cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    os.environ.clear()
    os.environ.update(request["env"])
    if request["mode"] == "exec":
        # Python ignores these; a program it execs would inherit that.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    if request["mode"] == "python":
        run_python(request)
    try:
        os.execve(request["argv"][0], request["argv"], request["env"])
    except OSError as error:
        os.write(2, f"hutch: cannot run {request['argv'][0]}: {error.strerror}\n".encode())
        os._exit(127)


# ---------------------------------------------------------------------------------------------
# In the fork server.


def preload():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # What every child uses to run a script, imported once here rather than in each child.
    import atexit, importlib.machinery, pkgutil, random, resource, runpy, stat, threading, traceback, types  # noqa: F401, E401, E501
    for name in CONFIG.get("preload", []):
        try:
            __import__(name)
        except Exception as error:  # noqa: BLE001 - a missing library only costs speed
            print(f"hutch fork server: cannot preload {name}: {error}", file=sys.stderr)
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.font_manager

        matplotlib.font_manager.fontManager.findfont("DejaVu Sans")
    warm_up()
    import gc

    gc.collect()
    gc.freeze()


def warm_libraries():
    """The preloaded libraries' common paths once, on data of ours: what they import or build on
    first use (pandas' describe and formatting, matplotlib's Agg canvas, text and PNG writer)
    then comes with the fork, not into every run (seen here: a 10k-row describe() 20 -> 16 ms,
    a line plot saved to PNG 76 -> 54 ms). Nothing of it stays: the figure is closed."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        frame = pandas.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
        frame.describe().to_string()
        repr(frame)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        figure, axes = pyplot.subplots()
        axes.plot([0, 1], [0, 1])
        axes.set_title("warm")
        figure.savefig(io.BytesIO(), format="png")
        pyplot.close(figure)


def warm_up():
    """Runs a child's Python path once on a fixed script of ours (never user code), so that what
    it fills on first use (the importer, codec and line caches, traceback's) is filled here once
    and shared by every child rather than copied into each."""
    import traceback

    path = "/tmp/.hutch-warm-up.py"
    with open(path, "w") as file:
        file.write("import sys\nprint('warm', file=sys.stdout)\n")
    saved = sys.modules["__main__"], sys.stdout, sys.stderr
    try:
        with open(os.devnull, "w") as null:
            sys.stdout = sys.stderr = null
            run_script(path)
            try:
                raise ValueError("warm")
            except ValueError as error:
                traceback.format_exception(type(error), error, error.__traceback__)
            warm_libraries()
    finally:
        sys.modules["__main__"], sys.stdout, sys.stderr = saved
        os.unlink(path)


INIT_FILE_ACTIONS = [
    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
    (os.POSIX_SPAWN_DUP2, 0, 1),
    (os.POSIX_SPAWN_DUP2, 0, 2),
]


def spawn(spec, own_pid_ns, children, inits, ready):
    read_fd, write_fd = os.pipe()
    # One fork of this interpreter per sandbox: a new pid namespace, its init (a small program,
    # started without copying this process: posix_spawn is a vfork), then the program's process
    # as its pid 2; and back to our own namespace.
    pid = None
    init = None
    try:
        check(libc.unshare(CLONE_NEWPID), "unshare pid")
        init = os.posix_spawn(INIT_PATH, ["hutch-sandbox-init"], {}, file_actions=INIT_FILE_ACTIONS)
        pid = os.fork()
    finally:
        if pid != 0:
            check(libc.setns(own_pid_ns, CLONE_NEWPID), "setns pid")
        if pid is None:
            os.close(read_fd)
            os.close(write_fd)
            if init is not None:
                os.kill(init, signal.SIGKILL)
                inits[init] = None
    if pid == 0:
        os.close(read_fd)
        null = os.open("/dev/null", os.O_RDWR)
        # Nothing of the fork server's own pipes stays open in a sandbox.
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.close(own_pid_ns)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        child_main(spec, write_fd)
        os._exit(125)
    os.close(write_fd)
    children[pid] = (spec["id"], init)
    inits[init] = spec["id"]
    ready[read_fd] = (pid, init, spec["id"])


def main():
    preload()
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = {}
    inits = {}
    ready = {}
    commands = b""
    send_event({"ev": "hello", "pid": os.getpid()})
    while True:
        readable, _, _ = select.select([0, wake_read, *ready], [], [])
        for fd in readable:
            if fd == wake_read:
                os.read(wake_read, 4096)
            elif fd == 0:
                chunk = os.read(0, 65536)
                if not chunk:
                    return
                commands += chunk
                while b"\n" in commands:
                    line, commands = commands.split(b"\n", 1)
                    command = json.loads(line)
                    if command["op"] == "stop":
                        return
                    if command["op"] == "spawn":
                        try:
                            spawn(command, own_pid_ns, children, inits, ready)
                        except OSError as error:
                            send_event({"ev": "failed", "id": command["id"], "reason": str(error)})
            else:
                # A child says "ok" once set up, or why it failed, and nothing more: the pipe
                # closes after its first message (a sandbox must not keep the fork server busy).
                pid, init, child_id = ready.pop(fd)
                message = os.read(fd, 1024)
                os.close(fd)
                if message == b"ok\n":
                    send_event({"ev": "ready", "id": child_id, "pid": pid, "init": init})
                else:
                    reason = message.decode(errors="replace").strip() or "the child died"
                    send_event({"ev": "failed", "id": child_id, "reason": reason[:1000]})
        while children or inits:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in inits:
                inits.pop(pid)
                continue
            child_id, init = children.pop(pid, (None, None))
            if child_id is None:
                continue
            # The program is gone: its init goes too, and whatever it left behind with it.
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            send_event({"ev": "exit", "id": child_id, "code": code & 0xFF})


if __name__ == "__main__":
    try:
        main()
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
