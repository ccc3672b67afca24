"""A Windows Job Object per job: no process of a job outlives it, its limits hold for all.

The script is created suspended, in a process group of its own, put in the job's Job Object
and only then resumed, so not one instruction of it runs outside the job, and every process
it starts is born inside (a job's processes cannot break away: the job does not allow it).
Ending the job is Ctrl+Break to its process group, then `TerminateJobObject` after the grace
period; the job is also made to kill everything in it when its last handle closes, so a
worker that dies takes its jobs' processes with it. Memory (all processes together),
process count and CPU time are the job's limits (`[runner] max_memory`, `max_pids`,
`max_cpu_seconds`); a completion port says when one is reached.

Only the child's own handles are inherited (a handle list), so one job's pipes never leak
into another job started at the same moment. Values reach the script as on Linux: the
environment (`OPSROOM_PARAMS`) and, for scripts that read their own command line, the
command line quoted by the rules every C runtime parses it with; never a shell.

Everything Windows-specific is a call on the `Kernel32` object, bound by `bind()` with every
function's exact prototype. That object is the ctypes boundary: tests on Linux pass a fake
in its place (tests/unit/runner/test_windows_job.py), and nothing else here touches the OS.
"""

from __future__ import annotations

import ctypes
import math
import ntpath
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from opsroom.errors import OpsroomError
from opsroom.runner import platform
from opsroom.runner.limits import Limits, format_bytes

# Fixed-size Windows types: ctypes.wintypes' DWORD is a C `long`, 8 bytes on Linux, so the
# structures below keep the Windows layout on any host that tests them.
DWORD = ctypes.c_uint32
WORD = ctypes.c_uint16
BOOL = ctypes.c_int32
HANDLE = ctypes.c_void_p
SIZE_T = ctypes.c_size_t
ULONG_PTR = ctypes.c_size_t
LARGE_INTEGER = ctypes.c_int64
ULONGLONG = ctypes.c_uint64

# CreateProcessW
CREATE_SUSPENDED = 0x00000004
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_UNICODE_ENVIRONMENT = 0x00000400
EXTENDED_STARTUPINFO_PRESENT = 0x00080000
STARTF_USESTDHANDLES = 0x00000100
PROC_THREAD_ATTRIBUTE_HANDLE_LIST = 0x00020002
HANDLE_FLAG_INHERIT = 0x00000001
# Job Objects
JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION = 1
JOB_OBJECT_BASIC_PROCESS_ID_LIST = 3
JOB_OBJECT_ASSOCIATE_COMPLETION_PORT_INFORMATION = 7
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
JOB_OBJECT_LIMIT_JOB_TIME = 0x00000004
JOB_OBJECT_LIMIT_ACTIVE_PROCESS = 0x00000008
JOB_OBJECT_LIMIT_JOB_MEMORY = 0x00000200
JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION = 0x00000400
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_MSG_END_OF_JOB_TIME = 1
JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT = 3
JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO = 4
JOB_OBJECT_MSG_NEW_PROCESS = 6
JOB_OBJECT_MSG_JOB_MEMORY_LIMIT = 10
# Files, waits, consoles
GENERIC_READ = 0x80000000
FILE_SHARE_READ = 0x00000001
FILE_SHARE_WRITE = 0x00000002
OPEN_EXISTING = 3
INFINITE = 0xFFFFFFFF
WAIT_FAILED = 0xFFFFFFFF
CTRL_BREAK_EVENT = 1
INVALID_HANDLE_VALUE: int = ctypes.c_void_p(-1).value or 0
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_MORE_DATA = 234

# How the script is created: suspended until it is in the job; a process group of its own,
# so Ctrl+Break reaches the job and not opsroom; the environment given as UTF-16.
CREATE_FLAGS = (
    CREATE_SUSPENDED
    | CREATE_NEW_PROCESS_GROUP
    | CREATE_UNICODE_ENVIRONMENT
    | EXTENDED_STARTUPINFO_PRESENT
)
# The completion keys of the job's port: the job's own messages; ours to stop its watcher;
# ours to learn the watcher has seen every message posted before it.
JOB_KEY = 1
STOP_KEY = 2
SYNC_KEY = 3
# 100-nanosecond ticks per second (a job's CPU time limit is counted in them).
_TICKS = 10_000_000
_LISTED = 1024  # the pids a look at the job lists at most (more are counted, not listed)
_EXIT_CODE = 1  # what TerminateJobObject leaves as each process's exit code

_MESSAGES = {
    2: "the file was not found",
    3: "the path was not found",
    5: "access is denied",
    8: "not enough memory",
    87: "a parameter is wrong",
    193: "it is not a Windows program",
    206: "the command line is too long",
    267: "the folder name is not valid",
    1455: "the paging file is too small",
}


class WindowsApiError(OpsroomError):
    """Windows refused a call a job needs (a Job Object, a pipe, the process itself)."""

    def __init__(self, function: str, code: int, filename: str | None = None) -> None:
        self.function = function
        self.code = code
        self.filename = filename
        self.reason = _MESSAGES.get(code, f"Windows error {code}")
        super().__init__(f"{function} failed: {self.reason} (error {code})")


class Kernel32(Protocol):
    """The functions of Windows' kernel32 this module calls, and the thread's last error."""

    def CreateJobObjectW(self, attributes: Any, name: Any) -> int | None: ...
    def SetInformationJobObject(self, job: Any, kind: int, info: Any, size: int) -> int: ...
    def QueryInformationJobObject(
        self, job: Any, kind: int, info: Any, size: int, returned: Any
    ) -> int: ...
    def AssignProcessToJobObject(self, job: Any, process: Any) -> int: ...
    def TerminateJobObject(self, job: Any, exit_code: int) -> int: ...
    def CreateIoCompletionPort(
        self, file: Any, port: Any, key: int, threads: int
    ) -> int | None: ...
    def GetQueuedCompletionStatus(
        self, port: Any, count: Any, key: Any, overlapped: Any, milliseconds: int
    ) -> int: ...
    def PostQueuedCompletionStatus(
        self, port: Any, count: int, key: int, overlapped: Any
    ) -> int: ...
    def CreatePipe(self, read: Any, write: Any, attributes: Any, size: int) -> int: ...
    def CreateFileW(
        self,
        name: Any,
        access: int,
        share: int,
        attributes: Any,
        disposition: int,
        flags: int,
        template: Any,
    ) -> int | None: ...
    def SetHandleInformation(self, handle: Any, mask: int, flags: int) -> int: ...
    def InitializeProcThreadAttributeList(
        self, attributes: Any, count: int, flags: int, size: Any
    ) -> int: ...
    def UpdateProcThreadAttribute(
        self,
        attributes: Any,
        flags: int,
        attribute: int,
        value: Any,
        size: int,
        previous: Any,
        returned: Any,
    ) -> int: ...
    def DeleteProcThreadAttributeList(self, attributes: Any) -> None: ...
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
    ) -> int: ...
    def ResumeThread(self, thread: Any) -> int: ...
    def TerminateProcess(self, process: Any, exit_code: int) -> int: ...
    def WaitForSingleObject(self, handle: Any, milliseconds: int) -> int: ...
    def GetExitCodeProcess(self, process: Any, code: Any) -> int: ...
    def GenerateConsoleCtrlEvent(self, event: int, group: int) -> int: ...
    def ReadFile(self, file: Any, buffer: Any, size: int, read: Any, overlapped: Any) -> int: ...
    def CloseHandle(self, handle: Any) -> int: ...
    def last_error(self) -> int: ...


_P = ctypes.c_void_p  # every pointer argument: a structure, buffer or out-parameter
_W = ctypes.c_wchar_p
# name -> (restype, argtypes). Exact prototypes: without them ctypes passes and returns C
# ints, and a 64-bit handle would be cut in half.
PROTOTYPES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "CreateJobObjectW": (HANDLE, (_P, _W)),
    "SetInformationJobObject": (BOOL, (HANDLE, ctypes.c_int, _P, DWORD)),
    "QueryInformationJobObject": (BOOL, (HANDLE, ctypes.c_int, _P, DWORD, _P)),
    "AssignProcessToJobObject": (BOOL, (HANDLE, HANDLE)),
    "TerminateJobObject": (BOOL, (HANDLE, ctypes.c_uint32)),
    "CreateIoCompletionPort": (HANDLE, (HANDLE, HANDLE, ULONG_PTR, DWORD)),
    "GetQueuedCompletionStatus": (BOOL, (HANDLE, _P, _P, _P, DWORD)),
    "PostQueuedCompletionStatus": (BOOL, (HANDLE, DWORD, ULONG_PTR, _P)),
    "CreatePipe": (BOOL, (_P, _P, _P, DWORD)),
    "CreateFileW": (HANDLE, (_W, DWORD, DWORD, _P, DWORD, DWORD, HANDLE)),
    "SetHandleInformation": (BOOL, (HANDLE, DWORD, DWORD)),
    "InitializeProcThreadAttributeList": (BOOL, (_P, DWORD, DWORD, _P)),
    "UpdateProcThreadAttribute": (BOOL, (_P, DWORD, ULONG_PTR, _P, SIZE_T, _P, _P)),
    "DeleteProcThreadAttributeList": (None, (_P,)),
    "CreateProcessW": (BOOL, (_W, _P, _P, _P, BOOL, DWORD, _P, _W, _P, _P)),
    "ResumeThread": (DWORD, (HANDLE,)),
    "TerminateProcess": (BOOL, (HANDLE, ctypes.c_uint32)),
    "WaitForSingleObject": (DWORD, (HANDLE, DWORD)),
    "GetExitCodeProcess": (BOOL, (HANDLE, _P)),
    "GenerateConsoleCtrlEvent": (BOOL, (DWORD, DWORD)),
    "ReadFile": (BOOL, (HANDLE, _P, DWORD, _P, _P)),
    "CloseHandle": (BOOL, (HANDLE,)),
}


class _Bound:
    """The real kernel32 with every prototype set (see `bind`)."""

    def __init__(self, dll: Any) -> None:
        for name, (restype, argtypes) in PROTOTYPES.items():
            function = getattr(dll, name)
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)

    def last_error(self) -> int:
        """The calling thread's last error, as ctypes saved it after the call."""
        return platform.last_error()


def bind(dll: Any) -> Kernel32:
    """Windows' kernel32 (a ctypes WinDLL) as this module calls it."""
    return cast(Kernel32, _Bound(dll))


# -- structures (their Windows layout; sizes on 64-bit in tests/unit/runner) ---------------


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    """The basic limits of a Job Object."""

    _fields_ = [
        ("PerProcessUserTimeLimit", LARGE_INTEGER),
        ("PerJobUserTimeLimit", LARGE_INTEGER),
        ("LimitFlags", DWORD),
        ("MinimumWorkingSetSize", SIZE_T),
        ("MaximumWorkingSetSize", SIZE_T),
        ("ActiveProcessLimit", DWORD),
        ("Affinity", ULONG_PTR),
        ("PriorityClass", DWORD),
        ("SchedulingClass", DWORD),
    ]


class IO_COUNTERS(ctypes.Structure):
    """I/O counts of a Job Object (part of its extended limits; read only)."""

    _fields_ = [
        (name, ULONGLONG)
        for name in (
            "ReadOperationCount",
            "WriteOperationCount",
            "OtherOperationCount",
            "ReadTransferCount",
            "WriteTransferCount",
            "OtherTransferCount",
        )
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    """The limits of a Job Object, memory included."""

    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", SIZE_T),
        ("JobMemoryLimit", SIZE_T),
        ("PeakProcessMemoryUsed", SIZE_T),
        ("PeakJobMemoryUsed", SIZE_T),
    ]


class JOBOBJECT_ASSOCIATE_COMPLETION_PORT(ctypes.Structure):
    """Where a Job Object posts its messages, and with which key."""

    _fields_ = [("CompletionKey", ctypes.c_void_p), ("CompletionPort", HANDLE)]


class JOBOBJECT_BASIC_ACCOUNTING_INFORMATION(ctypes.Structure):
    """Counts of a Job Object; `ActiveProcesses` is how many of its processes run."""

    _fields_ = [
        ("TotalUserTime", LARGE_INTEGER),
        ("TotalKernelTime", LARGE_INTEGER),
        ("ThisPeriodTotalUserTime", LARGE_INTEGER),
        ("ThisPeriodTotalKernelTime", LARGE_INTEGER),
        ("TotalPageFaultCount", DWORD),
        ("TotalProcesses", DWORD),
        ("ActiveProcesses", DWORD),
        ("TotalTerminatedProcesses", DWORD),
    ]


class JOBOBJECT_BASIC_PROCESS_ID_LIST(ctypes.Structure):
    """The pids of a Job Object's processes (room for `_LISTED` of them)."""

    _fields_ = [
        ("NumberOfAssignedProcesses", DWORD),
        ("NumberOfProcessIdsInList", DWORD),
        ("ProcessIdList", ULONG_PTR * _LISTED),
    ]


class STARTUPINFOW(ctypes.Structure):
    """How a new process starts: here, only its standard handles."""

    _fields_ = [
        ("cb", DWORD),
        ("lpReserved", ctypes.c_void_p),
        ("lpDesktop", ctypes.c_void_p),
        ("lpTitle", ctypes.c_void_p),
        ("dwX", DWORD),
        ("dwY", DWORD),
        ("dwXSize", DWORD),
        ("dwYSize", DWORD),
        ("dwXCountChars", DWORD),
        ("dwYCountChars", DWORD),
        ("dwFillAttribute", DWORD),
        ("dwFlags", DWORD),
        ("wShowWindow", WORD),
        ("cbReserved2", WORD),
        ("lpReserved2", ctypes.c_void_p),
        ("hStdInput", HANDLE),
        ("hStdOutput", HANDLE),
        ("hStdError", HANDLE),
    ]


class STARTUPINFOEXW(ctypes.Structure):
    """STARTUPINFOW with an attribute list (the handles the child may inherit)."""

    _fields_ = [("StartupInfo", STARTUPINFOW), ("lpAttributeList", ctypes.c_void_p)]


class PROCESS_INFORMATION(ctypes.Structure):
    """What CreateProcessW made: the process and its first thread, handles and ids."""

    _fields_ = [
        ("hProcess", HANDLE),
        ("hThread", HANDLE),
        ("dwProcessId", DWORD),
        ("dwThreadId", DWORD),
    ]


# -- what a job may use --------------------------------------------------------------------


def limit_information(limits: Limits) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION:
    """The Job Object limits for `[runner]`'s: always killed with its last handle, never a
    crash dialog holding a process; then memory (all processes together), process count
    and CPU time (user time, all processes together) where set."""
    info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    basic = info.BasicLimitInformation
    # A crashed process otherwise waits on Windows Error Reporting's dialog, which nobody
    # sees on a worker: the job would run until its timeout.
    flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
    if limits.memory:
        flags |= JOB_OBJECT_LIMIT_JOB_MEMORY
        info.JobMemoryLimit = limits.memory
    if limits.pids:
        flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS
        basic.ActiveProcessLimit = limits.pids
    if limits.cpu_seconds:
        flags |= JOB_OBJECT_LIMIT_JOB_TIME
        basic.PerJobUserTimeLimit = math.ceil(limits.cpu_seconds * _TICKS)
    basic.LimitFlags = flags
    return info


def limit_reason(message: int, limits: Limits) -> str | None:
    """The outcome line for a job message that says a limit was reached; None for others."""
    if message == JOB_OBJECT_MSG_JOB_MEMORY_LIMIT:
        return limits.memory_reason()
    if message == JOB_OBJECT_MSG_ACTIVE_PROCESS_LIMIT:
        return limits.pids_reason()
    if message == JOB_OBJECT_MSG_END_OF_JOB_TIME:
        return limits.cpu_reason()
    return None


def describe(limits: Limits) -> tuple[str, str]:
    """`config check`'s two lines on Windows: how jobs are contained, how limits hold."""

    def one(name: str, value: str, setting: float) -> str:
        return f"{name} {value} (job object)" if setting else f"{name} unlimited"

    parts = [
        one("memory", format_bytes(limits.memory), limits.memory),
        one("processes", str(limits.pids), limits.pids),
        one("CPU time", f"{limits.cpu_seconds:g} s", limits.cpu_seconds),
    ]
    contained = "job isolation: a Windows Job Object per job — no process outlives its job"
    return contained, "job limits: " + ", ".join(parts)


def summary(limits: Limits) -> dict[str, str]:
    """/healthz's words on Windows."""

    def one(setting: float) -> str:
        return "job object" if setting else "unlimited"

    return {
        "containment": "job object",
        "memory": one(limits.memory),
        "pids": one(limits.pids),
        "cpu": one(limits.cpu_seconds),
    }


# -- the command line and the environment ----------------------------------------------------


def command_line(argv: Sequence[str]) -> str:
    """argv as one Windows command line, quoted so the C runtime's rules (which Python,
    PowerShell and most programs parse with) give back exactly these items."""
    return subprocess.list2cmdline(argv)


def environment_block(env: Mapping[str, str]) -> bytes:
    """`NAME=value\\0...\\0` in UTF-16, sorted by name as Windows expects; ValueError for a
    name or value Windows cannot hold. Names differ only by case: the last one wins."""
    by_name: dict[str, tuple[str, str]] = {}
    for name, value in env.items():
        if not name or "=" in name[1:] or "\0" in name or "\0" in value:
            raise ValueError(f"the environment variable {name[:60]!r} cannot be passed on Windows")
        by_name[name.upper()] = (name, value)
    text = "".join(f"{n}={v}\0" for _, (n, v) in sorted(by_name.items())) + "\0"
    if len(text) < 2:
        text = "\0\0"
    return text.encode("utf-16-le")


# -- the Job Object --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The script's process: its id, and the handle its waiter waits on and closes."""

    pid: int
    process: int


class JobObject:
    """One job's Job Object: its limits, its processes, the port its messages come on."""

    def __init__(self, k32: Kernel32, limits: Limits) -> None:
        self.k32 = k32
        self.limits = limits
        self.handle = 0
        self.port = 0
        handle = k32.CreateJobObjectW(None, None)
        if not handle:
            raise self._error("CreateJobObjectW")
        self.handle = handle
        try:
            info = limit_information(limits)
            self._set(JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, info)
            port = k32.CreateIoCompletionPort(INVALID_HANDLE_VALUE, None, 0, 1)
            if not port:
                raise self._error("CreateIoCompletionPort")
            self.port = port
            where = JOBOBJECT_ASSOCIATE_COMPLETION_PORT(JOB_KEY, port)
            self._set(JOB_OBJECT_ASSOCIATE_COMPLETION_PORT_INFORMATION, where)
        except WindowsApiError:
            self.close()
            raise

    def _error(self, function: str, filename: str | None = None) -> WindowsApiError:
        return WindowsApiError(function, self.k32.last_error(), filename)

    def _set(self, kind: int, info: ctypes.Structure) -> None:
        size = ctypes.sizeof(info)
        if not self.k32.SetInformationJobObject(self.handle, kind, ctypes.pointer(info), size):
            raise self._error("SetInformationJobObject")

    def pipe(self) -> tuple[int, int]:
        """A pipe whose write end the child may inherit: (ours to read, the child's)."""
        read, write = HANDLE(), HANDLE()
        if not self.k32.CreatePipe(ctypes.pointer(read), ctypes.pointer(write), None, 0):
            raise self._error("CreatePipe")
        ours, theirs = read.value or 0, write.value or 0
        try:
            self._inheritable(theirs)
        except WindowsApiError:
            self.k32.CloseHandle(ours)
            self.k32.CloseHandle(theirs)
            raise
        return ours, theirs

    def null_input(self) -> int:
        """An inheritable handle reading the NUL device: the script's standard input."""
        share = FILE_SHARE_READ | FILE_SHARE_WRITE
        handle = self.k32.CreateFileW("NUL", GENERIC_READ, share, None, OPEN_EXISTING, 0, None)
        if not handle or handle == INVALID_HANDLE_VALUE:
            raise self._error("CreateFileW", "NUL")
        try:
            self._inheritable(handle)
        except WindowsApiError:
            self.k32.CloseHandle(handle)
            raise
        return handle

    def _inheritable(self, handle: int) -> None:
        # Only for the moment between here and CreateProcessW, which inherits only the
        # handles listed for it; the caller closes them right after.
        if not self.k32.SetHandleInformation(handle, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT):
            raise self._error("SetHandleInformation")

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        *,
        stdin: int,
        stdout: int,
        stderr: int,
        inherit: Sequence[int] = (),
    ) -> Started:
        """Create the script suspended, put it in the job, then let it run; WindowsApiError
        (with the program or folder in `filename`) when Windows refuses to."""
        k32 = self.k32
        handles = (stdin, stdout, stderr, *inherit)
        size = SIZE_T(0)
        # First call: how big the attribute list must be (it fails, saying so).
        k32.InitializeProcThreadAttributeList(None, 1, 0, ctypes.pointer(size))
        attributes = ctypes.create_string_buffer(size.value or 64)
        if not k32.InitializeProcThreadAttributeList(attributes, 1, 0, ctypes.pointer(size)):
            raise self._error("InitializeProcThreadAttributeList")
        information = PROCESS_INFORMATION()
        try:
            listed = (HANDLE * len(handles))(*handles)
            if not k32.UpdateProcThreadAttribute(
                attributes,
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                listed,
                ctypes.sizeof(listed),
                None,
                None,
            ):
                raise self._error("UpdateProcThreadAttribute")
            startup = STARTUPINFOEXW()
            startup.StartupInfo.cb = ctypes.sizeof(startup)
            startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES
            startup.StartupInfo.hStdInput = stdin
            startup.StartupInfo.hStdOutput = stdout
            startup.StartupInfo.hStdError = stderr
            startup.lpAttributeList = ctypes.cast(attributes, ctypes.c_void_p).value
            line = ctypes.create_unicode_buffer(command_line(argv))
            try:
                block = ctypes.create_string_buffer(environment_block(env))
            except ValueError as e:
                raise WindowsApiError("CreateProcessW", 87) from e
            # The program by its full path when argv has one: never looked for in the
            # job's folder, which the previous job's script could have written to.
            program = argv[0] if ntpath.isabs(argv[0]) else None
            if not k32.CreateProcessW(
                program,
                line,
                None,
                None,
                True,
                CREATE_FLAGS,
                block,
                cwd,
                ctypes.pointer(startup),
                ctypes.pointer(information),
            ):
                code = k32.last_error()
                # A folder that is not there reads as "path not found" or "not valid".
                filename = cwd if code in (3, 267) else argv[0]
                raise WindowsApiError("CreateProcessW", code, filename)
        finally:
            k32.DeleteProcThreadAttributeList(attributes)
        process, thread = information.hProcess or 0, information.hThread or 0
        try:
            if not k32.AssignProcessToJobObject(self.handle, process):
                raise self._error("AssignProcessToJobObject")
            if k32.ResumeThread(thread) == WAIT_FAILED:
                raise self._error("ResumeThread")
        except WindowsApiError:
            # It never ran a single instruction: end it, it is not the job's.
            k32.TerminateProcess(process, _EXIT_CODE)
            k32.CloseHandle(process)
            raise
        finally:
            k32.CloseHandle(thread)
        return Started(pid=information.dwProcessId, process=process)

    def active(self) -> int:
        """How many processes of the job are running."""
        info = JOBOBJECT_BASIC_ACCOUNTING_INFORMATION()
        size = ctypes.sizeof(info)
        kind = JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION
        if not self.k32.QueryInformationJobObject(
            self.handle, kind, ctypes.pointer(info), size, None
        ):
            raise self._error("QueryInformationJobObject")
        return int(info.ActiveProcesses)

    def pids(self) -> list[int]:
        """The ids of the job's running processes (the first `_LISTED` of them)."""
        info = JOBOBJECT_BASIC_PROCESS_ID_LIST()
        size = ctypes.sizeof(info)
        ok = self.k32.QueryInformationJobObject(
            self.handle, JOB_OBJECT_BASIC_PROCESS_ID_LIST, ctypes.pointer(info), size, None
        )
        if not ok and self.k32.last_error() != ERROR_MORE_DATA:
            raise self._error("QueryInformationJobObject")
        count = min(int(info.NumberOfProcessIdsInList), _LISTED)
        return [int(pid) for pid in info.ProcessIdList[:count]]

    def ctrl_break(self, group: int) -> bool:
        """Ctrl+Break to the job's process group; False where it cannot be sent (opsroom
        has no console to send it through, as when run by a service without one)."""
        return bool(self.k32.GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group))

    def terminate(self) -> None:
        """End every process of the job at once."""
        if not self.k32.TerminateJobObject(self.handle, _EXIT_CODE):
            raise self._error("TerminateJobObject")

    def next_message(self) -> tuple[int, int] | None:
        """Wait for the port's next message: (JOB_KEY, JOB_OBJECT_MSG_*) from the job,
        (SYNC_KEY, 0) as posted; None once STOP_KEY was posted (or the port failed)."""
        count, key, overlapped = DWORD(), ULONG_PTR(), ctypes.c_void_p()
        ok = self.k32.GetQueuedCompletionStatus(
            self.port,
            ctypes.pointer(count),
            ctypes.pointer(key),
            ctypes.pointer(overlapped),
            INFINITE,
        )
        if not ok or key.value == STOP_KEY:
            return None
        return int(key.value or 0), int(count.value)

    def post(self, key: int) -> None:
        """Queue a message of ours (STOP_KEY, SYNC_KEY) behind the job's own."""
        if not self.k32.PostQueuedCompletionStatus(self.port, 0, key, None):
            raise self._error("PostQueuedCompletionStatus")

    def close(self) -> None:
        """Close the job (what is left in it is killed) and its port."""
        for handle in (self.port, self.handle):
            if handle:
                self.k32.CloseHandle(handle)
        self.port = self.handle = 0


def wait_process(k32: Kernel32, process: int) -> int:
    """Wait for the process to end, close its handle, and return its exit code."""
    try:
        if k32.WaitForSingleObject(process, INFINITE) == WAIT_FAILED:
            raise WindowsApiError("WaitForSingleObject", k32.last_error())
        code = DWORD()
        if not k32.GetExitCodeProcess(process, ctypes.pointer(code)):
            raise WindowsApiError("GetExitCodeProcess", k32.last_error())
        return int(code.value)
    finally:
        k32.CloseHandle(process)


def read_pipe(k32: Kernel32, handle: int, size: int) -> bytes | None:
    """Up to `size` bytes from a pipe, waiting for some; None at its end (every writer
    closed it). An empty result is a writer's empty write, not the end."""
    buffer = ctypes.create_string_buffer(size)
    count = DWORD()
    if not k32.ReadFile(handle, buffer, size, ctypes.pointer(count), None):
        return None  # ERROR_BROKEN_PIPE, the usual end; any other error ends it too
    return buffer.raw[: count.value]
