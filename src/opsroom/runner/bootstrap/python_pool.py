"""opsroom's warm Python: a fork server per Python environment (runner/pool.py starts it).

    python python_pool.py <socket fd> [exec [<home cgroup.procs fd>,...]]

It imports the Python bootstrap and the modules scripts commonly use once, says `R` on the
socket, then waits. Each request is a number with file descriptors (SCM_RIGHTS): the job's
description (a memfd of JSON: argv after the interpreter, environment, folder, rlimits), its
stdout, stderr and event pipes, a pipe to say it is set up, a pipe to wait for the go on, and
its cgroups' `cgroup.procs` files. For each it forks a child that, before any of the job's
code runs: starts a session of its own, joins the job's cgroups, sets its limits, changes to
the job's folder, takes the job's environment and pipes, says `ok <pid>` and waits for opsroom's
go. Then it runs the script exactly as `python <argv>` would — through the bootstrap, or as
`__main__` — and exits the way a fresh interpreter does (threads joined, atexit run, streams
flushed). When a child ends the server reports `E <request> <returncode>`.

This server never reads a job's description: secrets never enter its memory, so no later job,
a copy of it, can find them there. Each job is a fork of a server that never ran a script, so
nothing a script does to modules or globals reaches the next one. The server exits when
opsroom closes the socket.

With `exec` it imports nothing more: it is the spawner, which starts every job that is not
forked from a warm Python, as subprocess would (the signals Python ignores set back to their
defaults, the program searched in the job's PATH). Its requests carry no go pipe: the job
starts at once, and the setup pipe says `ok <pid>`, `x <errno>` when the program could not
start, or why the job could not be set up. It starts the program as Popen does, with a vfork
(nothing of this process is copied), from inside the job's cgroups — it moves itself into them
for the spawn and back into its own (the fds given at start) before it answers — so the
program is born inside them. A job with rlimits to set, or one a vfork cannot start (a pids
limit of 1 leaves no room for the spawner beside it: a failed try would count as the job's),
is forked instead, the child setting
itself up as above and exec'ing at once. The spawner reads descriptions, and what it starts
replaces its memory at once by the exec: no job can read it.

A request whose text ends in `+` carries, last, the folder of the job's cgroup v2: its child
is forked into it (clone3's CLONE_INTO_CGROUP, Linux 5.7+) rather than moving itself there.
A move into a cgroup (a write to `cgroup.procs`) first waits for an RCU grace period, some
milliseconds, unless a hierarchy is mounted with `favordynmods`; a birth there does not.
Where the kernel refuses (older, or a seccomp filter) the child is forked as before and moves.
The v1 hierarchies' files are `tasks`: the one thread writing "0" moves without that wait.

Standard library only, valid on Python 3.8+: it runs in PEP 723 environments too. Linux only.
"""

from __future__ import annotations

import array
import contextlib
import errno
import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
SLOT_VAR = "OPSROOM_POOL_SLOT"  # as long as the token's name: the child writes the token there
TOKEN_VAR = "OPSROOM_JOB_TOKEN"  # noqa: S105 - a variable name, not a secret
_FIXED = 6  # description, stdout, stderr, events, ready, go; then the cgroup files to join
_EXEC_FIXED = 5  # the spawner's: no go
_INTO = b"+"  # a request's last fd is the cgroup v2 folder its child is born in
_MAX_FDS = 16
SETUP_FAILED = 127
_START_ERROR = "could not start the job: it could not enter its cgroup or set its limits"
# Imported once here so that no job pays for them: the bootstrap's own, and what scripts use.
_COMMON = (
    "argparse",
    "asyncio",
    "collections",
    "contextlib",
    "ctypes",
    "dataclasses",
    "datetime",
    "functools",
    "importlib.util",
    "inspect",
    "itertools",
    "json",
    "logging",
    "pathlib",
    "re",
    "runpy",
    "shlex",
    "shutil",
    "subprocess",
    "tempfile",
    "textwrap",
    "time",
    "traceback",
    "types",
    "typing",
    "urllib.parse",
)


def _warm():
    """Import the bootstrap (and `opsroom.script`) and the common modules."""
    import importlib

    import python_bootstrap

    python_bootstrap._install_helper()
    for name in _COMMON:
        with contextlib.suppress(ImportError):  # a trimmed-down Python may lack one
            importlib.import_module(name)
    return python_bootstrap


def _returncode(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def _receive(sock, fixed):
    """(request number, fds, cgroup v2 folder to be born in or None); (None, [], None) once
    opsroom closed the socket."""
    fds = array.array("i")
    try:
        msg, ancillary, flags, _ = sock.recvmsg(
            64, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC
        )
    except (ConnectionResetError, OSError):
        return None, [], None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not msg and not fds:
        return None, [], None
    into = msg.endswith(_INTO)
    number = msg[:-1] if into else msg
    if flags & socket.MSG_CTRUNC or not number.isdigit() or len(fds) < fixed + into:
        for fd in fds:
            os.close(fd)
        return b"", [], None
    fds = list(fds)
    return int(number), fds, fds.pop() if into else None


def serve(sock_fd, lean=False, homes=()):
    """Start a job per request; in the server None once opsroom has gone, in a forked child
    the fds of its job (and its description, for the spawner). `lean`: the spawner, which
    imports nothing for the jobs; `homes`: its own `cgroup.procs` files, to come back to."""
    sock = socket.socket(fileno=sock_fd)
    sock.setblocking(True)
    # Nothing of the server's may reach a job the spawner starts: only what it passes on.
    for fd in (sock_fd, *homes):
        os.set_inheritable(fd, False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _inherited[:] = [
        getattr(signal, name)
        for name in _RESET
        if signal.getsignal(getattr(signal, name)) == signal.SIG_IGN
    ]
    # Ctrl-C in opsroom's terminal is opsroom's to handle: the server outlives it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    boot = None if lean else _warm()
    if lean:
        import subprocess  # noqa: F401 - loaded now, not during the first job's start
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # the warm objects are never collected: their pages stay shared
    sock.sendall(b"R")
    jobs = {}
    popens = {}  # the spawner's: reaped here, never by Popen
    here = os.getcwd()  # where the spawner goes back to after each job's folder
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                number, fds, into = _receive(sock, _EXEC_FIXED if lean else _FIXED)
                if number is None:
                    return None
                if not fds:
                    continue
                spec = None
                if lean:
                    spec = _description(fds[0])
                    pid = _spawn(spec, fds, homes, popens, here, into)
                    if pid is not None:
                        for fd in fds if into is None else (*fds, into):
                            os.close(fd)
                        if pid:
                            jobs[pid] = number
                        continue
                try:
                    pid, born = _fork(into, bare=lean)
                except OSError:
                    pid, born = -1, False  # no process to be had: the job is not started
                if pid == 0:
                    selector.close()
                    sock.close()
                    signal.set_wakeup_fd(-1)
                    os.close(wake_r)
                    os.close(wake_w)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    for number in _inherited:
                        signal.signal(number, signal.SIG_DFL)
                    if into is not None:
                        if not born:
                            fds.append(_procs_of(into))  # it moves itself instead
                        os.close(into)
                    if spec is not None:
                        _enter_exec(spec, fds)  # never returns
                    return _enter(fds), boot
                for fd in fds if into is None else (*fds, into):
                    os.close(fd)
                if pid > 0:
                    jobs[pid] = number
            else:
                try:
                    while os.read(wake_r, 512):
                        pass
                except OSError:
                    pass
        while jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            number = jobs.pop(pid, None)
            code = _returncode(status)
            proc = popens.pop(pid, None)
            if proc is not None:
                proc.returncode = code  # reaped: Popen must not wait for it again
            if number is not None:
                sock.sendall(b"E %d %d" % (number, code))


def _fork(into, bare=False):
    """os.fork(), the child born in the cgroup v2 whose folder `into` is (when not None):
    (pid, whether it was born there). Raises OSError as os.fork does. `bare`: for a child
    that execs at once, without Python's own before and after steps (see `_clone_into`)."""
    global _clone
    if into is not None and _clone is not False:
        try:
            return _clone_into(into, bare), True
        except OSError as e:
            # Refused (a kernel before 5.7, a seccomp filter): forked, and it moves; for
            # good, unless the refusal may have been this one job's (its cgroup).
            if e.errno in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
                _clone = False
    return os.fork(), False


_clone = None  # the clone3 system call once looked up; False where there is none


def _clone_into(folder, bare=False):
    """clone3(CLONE_INTO_CGROUP), wrapped as os.fork wraps fork (Python's own before and
    after steps: its locks, threads and at-fork callbacks); the pid, 0 in the child.

    `bare` skips those steps, a millisecond of a fork that costs three: only for a child of
    the spawner, which has one thread (no lock another holds, no thread state to mend) and
    runs a few system calls before it execs."""
    global _clone
    if _clone is None:
        _clone = _lookup_clone()
    if _clone is False:
        raise OSError(errno.ENOSYS, "clone3 is not available")
    call, before, in_child, in_parent, get_errno = _clone
    # struct clone_args (linux/sched.h): flags, pidfd, child_tid, parent_tid, exit_signal,
    # stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    args = struct.pack("=11Q", _CLONE_INTO_CGROUP, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, folder)
    if not bare:
        before()
    pid = call(_SYS_CLONE3, args, len(args))
    if pid == 0:
        if not bare:
            in_child()
        return 0
    code = get_errno()
    if not bare:
        in_parent()
    if pid < 0:
        raise OSError(code, os.strerror(code))
    return pid


_SYS_CLONE3 = 435  # the same number on every Linux architecture
_CLONE_INTO_CGROUP = 0x200000000


def _lookup_clone():
    """What `_clone_into` calls, or False where it cannot (no ctypes, not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        # PyDLL: the call keeps the GIL, so the child's copy of the interpreter is whole.
        call = ctypes.PyDLL(None, use_errno=True).syscall
        api = ctypes.pythonapi
        hooks = (api.PyOS_BeforeFork, api.PyOS_AfterFork_Child, api.PyOS_AfterFork_Parent)
    except (ImportError, OSError, AttributeError):
        return False
    call.restype = ctypes.c_long
    call.argtypes = (ctypes.c_long, ctypes.c_char_p, ctypes.c_size_t)
    for hook in hooks:
        hook.restype = None
        hook.argtypes = ()
    return (call, *hooks, ctypes.get_errno)


def _procs_of(folder):
    """The `cgroup.procs` file of a cgroup's folder, open for writing ("0" moves the writer)."""
    try:
        return os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        # A stand-in whose write fails: the child says it could not enter its cgroup.
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)


def _description(fd):
    """A job's description from its memfd (read from the start, the offset left alone)."""
    return json.loads(os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8"))


# Python ignores these for itself; a program expects them as they are by default (a
# pipeline's writer dies of SIGPIPE). SIGINT: the server ignores it, a job must not.
_DEFAULTS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGINT") if hasattr(signal, name)
)
# Of these, those opsroom was started ignoring (a shell's background job ignores SIGINT and
# SIGQUIT, nohup SIGHUP; an ignored signal stays ignored through exec): a job starts with
# every one at its default, as opsroom starts one itself (runner/local.py).
_RESET = ("SIGHUP", "SIGQUIT", "SIGTERM")
_inherited = []


# A move into a cgroup soon after another one does not wait for a grace period: the kernel
# keeps its lock in the writers' mode for about one grace period after the last. So a job
# that comes within this many seconds of the last request or move moves (only the first
# move of a burst waits); one that comes later is forked into its cgroup v2 instead, a fork
# of the spawner (~3-4 ms here) against a wait of 6-12 ms (bench/README.md).
_BURST = 0.02
_last = [float("-inf")]  # the spawner's last request or move (time.monotonic)


def _spawn(spec, fds, homes, started, here, into):
    """The spawner's way: the job's pid once started, 0 when it could not start (said on
    the setup pipe), None when it must be forked instead (rlimits to set; `fork`: a pids
    limit of 1, which has no room for the spawner beside the job; a cgroup v2 folder `into`
    when a move would wait). `started` keeps each process's Popen until the server has
    reaped it."""
    _, out, err, events, ready = fds[:_EXEC_FIXED]
    cgroups = fds[_EXEC_FIXED:]
    now = time.monotonic()
    since, _last[0] = now - _last[0], now
    if spec["rlimits"] or spec.get("fork") or ((cgroups or into is not None) and not homes):
        return None
    if into is not None:
        if since > _BURST and _clone is not False:
            return None
        cgroups = [_procs_of(into), *cgroups]
    import subprocess

    env = dict(spec["env"])
    env["OPSROOM_EVENTS_FD"] = str(events)
    moved = False
    try:
        try:
            for fd in cgroups:
                moved = True
                os.write(fd, b"0")  # the program is born where its parent is
        except OSError:
            return _said(ready, _START_ERROR)
        finally:
            if into is not None:
                os.close(cgroups[0])
        try:
            os.chdir(spec["cwd"])
        except OSError as e:
            return _said(ready, _folder_error(spec["cwd"], e))
        # Popen resets SIGPIPE and SIGXFSZ (restore_signals); what the server ignores
        # itself the program must not. Set back once the program has started (a vfork: the
        # child leaves this process's memory at its exec).
        for number in (signal.SIGINT, *_inherited):
            signal.signal(number, signal.SIG_DFL)
        try:
            # A vfork, as Popen starts programs: nothing of this process is copied. The
            # program is found as `os.execvpe` finds it, in the job's PATH; its argv as
            # given, never through a shell.
            proc = subprocess.Popen(
                spec["argv"],
                env=env,
                stdout=out,
                stderr=err,
                pass_fds=(events,),
                start_new_session=True,
            )
        except OSError as e:
            return _said(ready, f"x {e.errno or 0}")
        finally:
            for number in (signal.SIGINT, *_inherited):
                signal.signal(number, signal.SIG_IGN)
    finally:
        os.chdir(here)
        if moved:
            for fd in homes:
                # Should this fail the spawner stays in the job's cgroups, ends with the
                # job, and opsroom starts another.
                with contextlib.suppress(OSError):
                    os.write(fd, b"0")
            _last[0] = time.monotonic()
    started[proc.pid] = proc
    os.write(ready, b"ok %d\n" % proc.pid)
    return proc.pid


def _folder_error(cwd, error):
    """Why the job could not start in its working folder, as opsroom says it."""
    return f"could not start the job: working folder {cwd}: {error.strerror or error}"


def _said(ready, message):
    """Say why the job did not start; 0: nothing to wait for."""
    os.write(ready, message.encode("utf-8", "replace"))
    return 0


def _enter(fds):
    """In the child: become the job's process; its description once opsroom said go."""
    spec_fd, out, err, events, ready, go = fds[:_FIXED]
    with os.fdopen(spec_fd, "rb") as f:
        spec = json.loads(f.read().decode("utf-8"))
    env = _setup(spec, fds[_FIXED:], out, err, events, ready)
    os.environ.clear()
    os.environ.update(env)
    _mark(spec["env"].get(TOKEN_VAR))
    os.write(ready, b"ok %d" % os.getpid())
    os.close(ready)
    word = os.read(go, 1)
    os.close(go)
    if word != b"g":
        os._exit(0)  # opsroom gave the job up before it started: none of it ran
    return spec


def _enter_exec(spec, fds):
    """In the spawner's forked child: become the job's program at once; never returns."""
    _, out, err, events, ready = fds[:_EXEC_FIXED]
    env = _setup(spec, fds[_EXEC_FIXED:], out, err, events, ready)
    os.write(ready, b"ok %d\n" % os.getpid())
    _exec(spec["argv"], env, ready)


def _setup(spec, cgroups, out, err, events, ready):
    """Session, cgroups, limits, folder and pipes of the job; its environment."""

    def fail(message):
        try:
            os.write(ready, message.encode("utf-8", "replace"))
        finally:
            os._exit(SETUP_FAILED)

    os.setsid()
    try:
        for fd in cgroups:
            os.write(fd, b"0")  # "0": the writer itself; nothing of the job runs outside
            os.close(fd)
    except OSError:
        fail(_START_ERROR)
    try:
        if spec["rlimits"]:
            import resource

            for which, soft, hard in spec["rlimits"]:
                resource.setrlimit(which, (soft, hard))
    except (OSError, ValueError):
        fail(_START_ERROR)
    try:
        os.chdir(spec["cwd"])
    except OSError as e:
        fail(_folder_error(spec["cwd"], e))
    env = dict(spec["env"])
    env["OPSROOM_EVENTS_FD"] = str(events)
    os.set_inheritable(events, True)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    return env


def _exec(argv, env, ready):
    """Become argv, as subprocess starts a program; never returns. The setup pipe closes
    with the exec (it is close-on-exec); before it, a failed exec is said there."""
    for number in (*_DEFAULTS, *_inherited):
        signal.signal(number, signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the job's argv, as given; no shell
    except OSError as e:
        code = e.errno or 0
    os.write(ready, b"x %d" % code)
    os._exit(SETUP_FAILED)


def _mark(token):
    """Write the job's token into this process's own environment block, where the slot was.

    /proc/<pid>/environ shows the environment a process was started with — the server's.
    opsroom finds a job's processes by its token there (runner/tree.py) when no cgroup holds
    them, also after opsroom itself was killed. Best effort: the job is still found by its
    session and process group without it.
    """
    if not token:
        return
    try:
        import ctypes

        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2 :].split()  # from field 3 on
        env_start, env_end = int(fields[47]), int(fields[48])  # fields 50 and 51
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
        if not env_start or env_end - env_start != len(block):
            return  # not the block this process was started with: leave it alone
        slot = (SLOT_VAR + "=").encode()
        at = 0 if block.startswith(slot) else block.find(b"\0" + slot) + 1
        if at <= 0 and not block.startswith(slot):
            return
        end = block.index(b"\0", at)
        entry = (TOKEN_VAR + "=" + token).encode()
        if len(entry) > end - at:
            return
        data = entry + b"\0" * (end - at - len(entry))
        ctypes.memmove(env_start + at, data, len(data))
    except (ImportError, OSError, ValueError, IndexError):
        pass


def _run(spec, boot):
    """Run the job as `python <argv>` would; its exit status."""
    argv = list(spec["argv"])
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # TMPDIR is the job's own folder
    import time

    if hasattr(time, "tzset"):
        time.tzset()
    if len(argv) == 2 and os.path.realpath(argv[0]) == os.path.realpath(boot.__file__):
        sys.argv = argv
        try:
            return boot.run(argv[1])
        finally:
            _JOB_MODULES.append(sys.modules.get("__opsroom_script__"))
    return _run_main(argv)


def _run_main(argv):
    """The script as `__main__`, with its own argv: argparse, click and typer scripts."""
    import types

    path = argv[0]
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write(
            f"{sys.executable}: can't open file {path!r}: [Errno {e.errno}] {e.strerror}\n"
        )
        return 2
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    _JOB_MODULES.append(main)
    try:
        # The job's own script, run as `python <script>` runs it.
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)  # noqa: S102
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the script's own failure: its frames only, as python prints
        import traceback

        tb = exc.__traceback__
        while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(
            __file__
        ):
            tb = tb.tb_next
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
        return 1
    return 0


def _exit_status(code):
    """The status `sys.exit(code)` gives: None 0, a number itself, anything else printed, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{code}\n")
    return 1


def _shutdown():
    """What a fresh interpreter does at exit, short of tearing down every module one by one
    (that writes to every page the server shares with this child, and costs more than the
    job); the caller then exits at once.

    The same steps, in Python's order: wait for the job's threads, run its atexit
    functions, let go of what its module still holds (an open file is flushed and closed, as
    at any exit), flush stdout and stderr.
    """
    threading = sys.modules.get("threading")
    if threading is not None and hasattr(threading, "_shutdown"):
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for module in _JOB_MODULES:
        if module is None:
            continue
        names = module.__dict__
        # Python's own order at exit: `_name`s first, then the rest; __builtins__ stays.
        for first in (True, False):
            for name in list(names):
                if name != "__builtins__" and (name.startswith("_") == first):
                    names[name] = None
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


_JOB_MODULES = []  # the job's script as a module: what it holds is let go of at its exit

if __name__ == "__main__":
    lean = sys.argv[2:3] == ["exec"]
    homes = tuple(int(fd) for fd in sys.argv[3].split(",") if fd) if sys.argv[3:] else ()
    started = serve(int(sys.argv[1]), lean=lean, homes=homes)
    if started is None:
        sys.exit(0)
    try:
        code = _run(*started)
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        _shutdown()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as Python does: the job dies of SIGINT
        code = 130
    _shutdown()
    os._exit(_exit_status(code))
