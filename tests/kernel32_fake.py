"""Windows' kernel32 at the ctypes boundary, on Linux: the runner's Windows path, run for real.

`FakeKernel32` is the only stand-in when a test selects the Windows code path
(`replace(WINDOWS, kernel32=lambda: fake)`): everything above it — winjob's structures,
winrun's threads, run_local — is the product's code. It records every call with its
arguments as Windows would see them (flags, structure fields, handle lists), and does what
Windows would with real Linux parts:
- pipes are `os.pipe()` fds used as handle values (so a script sees its event channel's
  "handle" as an fd it can write to), the NUL device is /dev/null;
- CreateProcessW parses the command line by the C runtime's rules, decodes the UTF-16
  environment block and starts a real process that is truly suspended: a trampoline that
  execs the program only when ResumeThread says so (never, if it is terminated first);
- a Job Object is the process groups of the processes assigned to it (each process starts
  in a session of its own, as CREATE_NEW_PROCESS_GROUP gives a group of its own):
  TerminateJobObject KILLs them, its process list is what /proc says is in them;
- Ctrl+Break is SIGTERM to the group (what a script may catch, or die of by default);
  `console=False` makes GenerateConsoleCtrlEvent fail, as for a service without a console;
- the completion port is a queue; `post_job_message` posts as the job would.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

ERROR_FILE_NOT_FOUND = 2
ERROR_DIRECTORY = 267
ERROR_BROKEN_PIPE = 109
ERROR_INSUFFICIENT_BUFFER = 122
STATUS_CONTROL_C_EXIT = 0xC000013A
JOB_KEY = 1

# Runs the program only once one byte arrives on fd argv[1]: a process created suspended.
_TRAMPOLINE = (
    "import os, sys\n"
    "go = int(sys.argv[1])\n"
    "if os.read(go, 1):\n"
    "    os.close(go)\n"
    "    os.execv(sys.argv[2], sys.argv[3:])\n"
)


def split_command_line(line: str) -> list[str]:
    """A Windows command line → argv, by the rules of the C runtime (and CommandLineToArgvW)."""
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return args
        arg: list[str] = []
        quoted = False
        while i < n and (quoted or line[i] not in " \t"):
            c = line[i]
            if c == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                if j < n and line[j] == '"':
                    arg.append("\\" * ((j - i) // 2))
                    if (j - i) % 2:
                        arg.append('"')
                        j += 1
                else:
                    arg.append("\\" * (j - i))
                i = j
            elif c == '"':
                if quoted and i + 1 < n and line[i + 1] == '"':
                    arg.append('"')
                    i += 2
                else:
                    quoted = not quoted
                    i += 1
            else:
                arg.append(c)
                i += 1
        args.append("".join(arg))


def decode_environment(block: bytes) -> dict[str, str]:
    """A UTF-16 `NAME=value\\0...\\0\\0` block → its variables (in block order)."""
    text = block[: len(block) // 2 * 2].decode("utf-16-le")  # a C buffer's extra NUL byte
    end = text.find("\0\0")
    env: dict[str, str] = {}
    for item in text[: end if end != -1 else len(text)].split("\0"):
        if item:
            name, _, value = item.partition("=")
            env[name] = value
    return env


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    go: int  # write end of the trampoline's "resume" pipe; -1 once used
    job: _Job | None = None
    resumed: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class _Job:
    limits: dict[str, int] = field(default_factory=dict)
    port: int = 0
    key: int = 0
    processes: list[_Process] = field(default_factory=list)
    terminated: int | None = None  # the exit code TerminateJobObject gave


class FakeKernel32:
    """See the module docstring. `calls` holds (name, details) in call order, all threads."""

    def __init__(self, *, console: bool = True, fail: dict[str, int] | None = None) -> None:
        self.console = console
        self.fail = dict(fail or {})  # function name -> the error it fails with, once
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.open: dict[int, str] = {}  # handle -> what it is
        self.errors: list[str] = []  # misuse seen: a handle closed twice, an unknown one
        self._next = 0x10000  # handles that are not fds: far above any fd
        self._lock = threading.Condition()
        self._jobs: dict[int, _Job] = {}
        self._ports: dict[int, queue.Queue[tuple[int, int] | None]] = {}
        self._processes: dict[int, _Process] = {}
        self._threads: dict[int, _Process] = {}
        self._handle_lists: dict[int, list[int]] = {}
        self._last = threading.local()

    # -- bookkeeping ---------------------------------------------------------------------

    def _record(self, function: str, /, **details: Any) -> None:
        with self._lock:
            self.calls.append((function, details))

    def _new(self, kind: str, handle: int | None = None) -> int:
        with self._lock:
            if handle is None:
                self._next += 4
                handle = self._next
            self.open[handle] = kind
            return handle

    def _failing(self, name: str) -> bool:
        code = self.fail.pop(name, None)
        if code is None:
            return False
        self._last.code = code
        return True

    def names(self) -> list[str]:
        """The functions called, in order."""
        return [name for name, _ in self.calls]

    def called(self, name: str) -> list[dict[str, Any]]:
        """The details of every call of `name`, in order."""
        return [details for n, details in self.calls if n == name]

    def wait_closed(self, timeout: float = 10.0) -> dict[int, str]:
        """Wait until every handle is closed (reader threads close theirs at the pipe's end);
        what is still open after `timeout`."""
        with self._lock:
            self._lock.wait_for(lambda: not self.open, timeout)
            return dict(self.open)

    def post_job_message(self, message: int) -> None:
        """Post a message as the (only) job would: JOB_OBJECT_MSG_*."""
        (job,) = self._jobs.values()
        self._ports[job.port].put((job.key, message))

    def last_error(self) -> int:
        return int(getattr(self._last, "code", 0))

    # -- Job Objects ---------------------------------------------------------------------

    def CreateJobObjectW(self, attributes: Any, name: Any) -> int | None:
        self._record("CreateJobObjectW", attributes=attributes, name=name)
        if self._failing("CreateJobObjectW"):
            return None
        handle = self._new("job")
        self._jobs[handle] = _Job()
        return handle

    def SetInformationJobObject(self, job: int, kind: int, info: Any, size: int) -> int:
        got = info.contents
        details: dict[str, Any] = {"job": job, "kind": kind, "size": size}
        if kind == 9:
            basic = got.BasicLimitInformation
            details.update(
                LimitFlags=basic.LimitFlags,
                ActiveProcessLimit=basic.ActiveProcessLimit,
                PerJobUserTimeLimit=basic.PerJobUserTimeLimit,
                PerProcessUserTimeLimit=basic.PerProcessUserTimeLimit,
                JobMemoryLimit=got.JobMemoryLimit,
                ProcessMemoryLimit=got.ProcessMemoryLimit,
            )
            self._jobs[job].limits = {k: v for k, v in details.items() if k[0].isupper()}
        elif kind == 7:
            details.update(key=got.CompletionKey, port=got.CompletionPort)
            self._jobs[job].port = got.CompletionPort
            self._jobs[job].key = got.CompletionKey
        self._record("SetInformationJobObject", **details)
        return 1

    def _members(self, job: _Job) -> list[int]:
        """Live pids in the process groups of the job's processes (by /proc)."""
        groups = {p.pid for p in job.processes}
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            fields = raw[raw.rfind(b")") + 2 :].split()
            if int(fields[2]) in groups and fields[0] not in (b"Z", b"X"):
                found.append(int(name))
        return sorted(found)

    def QueryInformationJobObject(
        self, job: int, kind: int, info: Any, size: int, returned: Any
    ) -> int:
        members = self._members(self._jobs[job])
        self._record("QueryInformationJobObject", job=job, kind=kind, found=members)
        got = info.contents
        if kind == 1:
            got.ActiveProcesses = len(members)
            got.TotalProcesses = len(self._jobs[job].processes)
        elif kind == 3:
            got.NumberOfAssignedProcesses = len(members)
            got.NumberOfProcessIdsInList = len(members)
            for i, pid in enumerate(members):
                got.ProcessIdList[i] = pid
        return 1

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        proc = self._processes[process]
        self._record("AssignProcessToJobObject", job=job, process=process, resumed=proc.resumed)
        if self._failing("AssignProcessToJobObject"):
            return 0
        proc.job = self._jobs[job]
        self._jobs[job].processes.append(proc)
        return 1

    def TerminateJobObject(self, job: int, exit_code: int) -> int:
        the_job = self._jobs[job]
        self._record("TerminateJobObject", job=job, exit_code=exit_code)
        the_job.terminated = exit_code
        for proc in the_job.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return 1

    def CreateIoCompletionPort(self, file: Any, port: Any, key: int, threads: int) -> int | None:
        self._record("CreateIoCompletionPort", file=file, port=port, key=key, threads=threads)
        handle = self._new("port")
        self._ports[handle] = queue.Queue()
        return handle

    def GetQueuedCompletionStatus(
        self, port: int, count: Any, key: Any, overlapped: Any, milliseconds: int
    ) -> int:
        waiting = self._ports.get(port)
        if waiting is None:
            return 0
        got = waiting.get()
        if got is None:  # the port was closed
            self._last.code = 735  # ERROR_ABANDONED_WAIT_0
            return 0
        key.contents.value, count.contents.value = got
        return 1

    def PostQueuedCompletionStatus(self, port: int, count: int, key: int, overlapped: Any) -> int:
        self._record("PostQueuedCompletionStatus", port=port, count=count, key=key)
        if port not in self._ports or self.open.get(port) != "port":
            return 0
        self._ports[port].put((key, count))
        return 1

    # -- handles, pipes, files -----------------------------------------------------------

    def CreatePipe(self, read: Any, write: Any, attributes: Any, size: int) -> int:
        r, w = os.pipe()
        self._new("pipe read", r)
        self._new("pipe write", w)
        read.contents.value, write.contents.value = r, w
        self._record("CreatePipe", read=r, write=w, attributes=attributes)
        return 1

    def CreateFileW(
        self,
        name: Any,
        access: int,
        share: int,
        attributes: Any,
        disposition: int,
        flags: int,
        template: Any,
    ) -> int | None:
        self._record("CreateFileW", name=name, access=access, disposition=disposition)
        assert name == "NUL"
        return self._new("NUL", os.open(os.devnull, os.O_RDONLY))

    def SetHandleInformation(self, handle: int, mask: int, flags: int) -> int:
        self._record("SetHandleInformation", handle=handle, mask=mask, flags=flags)
        return 1

    def CloseHandle(self, handle: int) -> int:
        with self._lock:
            kind = self.open.pop(handle, None)
            self._lock.notify_all()
        self._record("CloseHandle", handle=handle, kind=kind)
        if kind is None:
            self.errors.append(f"CloseHandle({handle}) of a handle not open")
            return 0
        if kind in ("pipe read", "pipe write", "NUL"):
            os.close(handle)
        elif kind == "port":
            self._ports[handle].put(None)
        return 1

    def ReadFile(self, file: int, buffer: Any, size: int, read: Any, overlapped: Any) -> int:
        try:
            data = os.read(file, size)
        except OSError:
            data = b""
        if not data:
            self._last.code = ERROR_BROKEN_PIPE
            return 0
        ctypes.memmove(buffer, data, len(data))
        read.contents.value = len(data)
        return 1

    # -- processes -----------------------------------------------------------------------

    def InitializeProcThreadAttributeList(
        self, attributes: Any, count: int, flags: int, size: Any
    ) -> int:
        self._record("InitializeProcThreadAttributeList", count=count, sized=attributes is None)
        if attributes is None:
            size.contents.value = 48
            self._last.code = ERROR_INSUFFICIENT_BUFFER
            return 0
        return 1

    def UpdateProcThreadAttribute(
        self,
        attributes: Any,
        flags: int,
        attribute: int,
        value: Any,
        size: int,
        previous: Any,
        returned: Any,
    ) -> int:
        handles = [h or 0 for h in value]
        self._handle_lists[ctypes.addressof(attributes)] = handles
        self._record("UpdateProcThreadAttribute", attribute=attribute, handles=handles, size=size)
        return 1

    def DeleteProcThreadAttributeList(self, attributes: Any) -> None:
        self._handle_lists.pop(ctypes.addressof(attributes), None)
        self._record("DeleteProcThreadAttributeList")

    def CreateProcessW(
        self,
        application: Any,
        command_line: Any,
        process_attributes: Any,
        thread_attributes: Any,
        inherit: int,
        flags: int,
        environment: Any,
        directory: Any,
        startup: Any,
        information: Any,
    ) -> int:
        argv = split_command_line(command_line.value)
        env = decode_environment(environment.raw)
        si = startup.contents
        std = (si.StartupInfo.hStdInput, si.StartupInfo.hStdOutput, si.StartupInfo.hStdError)
        listed = self._handle_lists.get(si.lpAttributeList or 0, [])
        self._record(
            "CreateProcessW",
            application=application,
            argv=argv,
            env=env,
            cwd=directory,
            inherit=inherit,
            flags=flags,
            cb=si.StartupInfo.cb,
            dwFlags=si.StartupInfo.dwFlags,
            std=std,
            listed=listed,
        )
        program = application or shutil.which(argv[0], path=env.get("PATH"))
        if program is None or not os.path.isfile(program):
            self._last.code = ERROR_FILE_NOT_FOUND
            return 0
        if not os.path.isdir(directory):
            self._last.code = ERROR_DIRECTORY
            return 0
        go_r, go_w = os.pipe()
        extra = [h for h in listed if h not in std]
        try:
            popen = subprocess.Popen(
                [sys.executable, "-I", "-c", _TRAMPOLINE, str(go_r), program, *argv],
                stdin=std[0],
                stdout=std[1],
                stderr=std[2],
                env=env,
                cwd=directory,
                pass_fds=(go_r, *extra),
                start_new_session=True,
            )
        finally:
            os.close(go_r)
        proc = _Process(popen, go_w)
        out = information.contents
        out.hProcess = self._new("process")
        out.hThread = self._new("thread")
        out.dwProcessId = popen.pid
        out.dwThreadId = popen.pid
        self._processes[out.hProcess] = proc
        self._threads[out.hThread] = proc
        return 1

    def ResumeThread(self, thread: int) -> int:
        proc = self._threads[thread]
        self._record("ResumeThread", thread=thread, pid=proc.pid, in_job=proc.job is not None)
        os.write(proc.go, b"x")
        os.close(proc.go)
        proc.go = -1
        proc.resumed = True
        return 1  # the suspend count before

    def TerminateProcess(self, process: int, exit_code: int) -> int:
        proc = self._processes[process]
        self._record("TerminateProcess", process=process, exit_code=exit_code)
        if proc.go != -1:
            os.close(proc.go)  # the trampoline reads EOF and exits, having run nothing
            proc.go = -1
        with contextlib.suppress(ProcessLookupError):
            proc.popen.kill()
        proc.popen.wait()
        return 1

    def WaitForSingleObject(self, handle: int, milliseconds: int) -> int:
        self._processes[handle].popen.wait()
        return 0

    def GetExitCodeProcess(self, process: int, code: Any) -> int:
        proc = self._processes[process]
        returncode = proc.popen.wait()
        if returncode >= 0:
            value = returncode
        elif proc.job is not None and proc.job.terminated is not None:
            value = proc.job.terminated
        else:
            value = STATUS_CONTROL_C_EXIT
        code.contents.value = value
        self._record("GetExitCodeProcess", process=process, code=value)
        return 1

    def GenerateConsoleCtrlEvent(self, event: int, group: int) -> int:
        self._record("GenerateConsoleCtrlEvent", event=event, group=group)
        if not self.console:
            self._last.code = 6  # ERROR_INVALID_HANDLE: no console to send it through
            return 0
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        return 1
