"""hutch fork server ("zygote"): one long-lived interpreter that never runs user code.

It runs inside its own bubblewrap sandbox (own user, pid, mount and network namespaces, no
capability outside them) and imports the heavy libraries once. Then it hands control to its loop
in C (hutch-forkserver.c, which says what a child is made of and the protocol with the server),
which forks one child per prepared sandbox and never returns in this process. In a child the call
returns once the child is a sandbox (namespaces, mounts, limits, no capabilities, seccomp, its
streams on fds 0-2); Python then gives it its own random generators and streams, says it is
ready, and waits for its one request: run Python in this interpreter (its imports are already
done), or exec another program.

The request arrives on the stdin connection: input files as frames (see receive_request), then
{"op": "run", "mode": "python"|"exec", "argv", "env", "cpuSeconds"}; what follows is the
program's stdin.
"""

import ctypes
import errno
import io
import json
import os
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

class Config(ctypes.Structure):
    """struct hutch_forkserver_config (hutch-forkserver.c)."""

    _fields_ = [
        ("socket_path", ctypes.c_char_p),
        ("socket_dir", ctypes.c_char_p),
        ("workdir", ctypes.c_char_p),
        ("init_path", ctypes.c_char_p),
        ("uid", ctypes.c_uint),
        ("last_cap", ctypes.c_int),
        ("file_count", ctypes.c_int),
        ("file_targets", ctypes.POINTER(ctypes.c_char_p)),
        ("file_sources", ctypes.POINTER(ctypes.c_char_p)),
        ("seccomp_none", ctypes.c_void_p),
        ("seccomp_loopback", ctypes.c_void_p),
    ]


class ChildStart(ctypes.Structure):
    """struct hutch_child_start: what a child gets back from the loop."""

    _fields_ = [("ready_fd", ctypes.c_int), ("request_fd", ctypes.c_int)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def send_event(event):
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(1, data):]


def native_config():
    """The loop's settings, kept alive in this module's globals for the process's life."""
    global _KEEP
    seccomp = {}
    buffers = []
    for network, path in CONFIG["seccomp"].items():
        with open(path, "rb") as file:
            program = file.read()
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        buffers.append((buffer, fprog))
        seccomp[network] = ctypes.addressof(fprog)
    targets = (ctypes.c_char_p * max(len(FILES), 1))(*[target.encode() for target, _ in FILES])
    sources = (ctypes.c_char_p * max(len(FILES), 1))(*[source.encode() for _, source in FILES])
    config = Config(
        SOCKET_PATH.encode(),
        SOCKET_DIR.encode(),
        WORKDIR.encode(),
        INIT_PATH.encode(),
        SANDBOX_UID,
        int(open("/proc/sys/kernel/cap_last_cap").read()),
        len(FILES),
        targets,
        sources,
        seccomp["none"],
        seccomp["loopback"],
    )
    _KEEP = (buffers, targets, sources, config)
    return config


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


def arguments_area():
    """Where this process's argv strings are (arg_start, arg_end of /proc/self/stat, fields 48
    and 49): read once here, the same addresses in every forked child."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    # The split starts at field 3.
    return int(fields[45]), int(fields[46])


ARGUMENTS_AREA = arguments_area()


def set_title(title):
    """Shows `title` as this process's /proc/PID/cmdline (the fork server's argv otherwise)."""
    start, end = ARGUMENTS_AREA
    size = end - start
    title = title[: size - 1]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, title, len(title))


def prepare_program(start):
    """What the program's Python can do before it knows its request, so that the request only
    waits for what depends on it: its own random generators (the pages they touch are copied
    now, not while the program runs). Then it says it is ready."""
    reseed()
    os.write(start.ready_fd, b"ok\n")
    os.close(start.ready_fd)
    return socket.socket(fileno=start.request_fd)


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
    if request["mode"] == "python":
        os.environ.clear()
        os.environ.update(request["env"])
        run_python(request)
    # Python ignores these; a program it execs would inherit that.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
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


def main():
    preload()
    native = ctypes.PyDLL(CONFIG["native"])
    native.hutch_forkserver_serve.argtypes = [ctypes.POINTER(Config), ctypes.POINTER(ChildStart)]
    native.hutch_forkserver_serve.restype = ctypes.c_int
    config = native_config()
    start = ChildStart(-1, -1)
    send_event({"ev": "hello", "pid": os.getpid()})
    # Made here, once, rather than in each child: in a child, fds 0-2 are its streams. This
    # process writes its events with os.write, never through them.
    python_streams()
    # Called holding the interpreter's lock (PyDLL), which a child keeps: it returns in children
    # only, and in this process once the server is gone or said stop.
    result = native.hutch_forkserver_serve(ctypes.byref(config), ctypes.byref(start))
    if result < 0:
        raise OSError(ctypes.get_errno(), "the fork server's loop failed")
    if result == 0:
        return
    try:
        # As os.fork() does in its child: the interpreter's own state, then the hooks libraries
        # registered with os.register_at_fork (matplotlib empties its cache of open fonts).
        ctypes.pythonapi.PyOS_AfterFork_Child()
        request_socket = prepare_program(start)
    except BaseException as error:  # noqa: BLE001
        os.write(start.ready_fd, ("failed: " + str(error)).encode()[:1000])
        os._exit(125)
    run_program(request_socket)
    os._exit(125)


if __name__ == "__main__":
    try:
        main()
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
