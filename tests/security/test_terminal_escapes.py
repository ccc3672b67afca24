"""A script's output cannot drive the terminal of whoever runs `opsroom run` or `shell`.

A real script prints escape sequences — colours, a window title, an OSC 52 clipboard
write, an OSC 8 hidden link, a cursor rewind over text already shown, BEL, and 8-bit C1
controls — in its output, a progress message, a table and a status line. What reaches the
terminal (a pipe for `opsroom run`, a real pseudo-terminal for `opsroom shell`) holds none
of them; the readable text stays, and other control characters show as visible symbols.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from support import OPSROOM

SCRIPT = textwrap.dedent(
    '''\
    """Print what a hostile or careless script prints."""

    import json
    import os
    import sys


    def main() -> None:
        """Escape."""
        out = sys.stdout.buffer
        out.write(b"\\x1b[31mred\\x1b[0m alert\\n")
        out.write(b"\\x1b]52;c;cm0gLXJmIH4=\\x07copied\\n")
        out.write(b"\\x1b]8;;https://evil.example/\\x1b\\\\click here\\x1b]8;;\\x1b\\\\\\n")
        out.write(b"\\x1b]0;owned\\x07title\\n")
        out.write(b"safe\\x1b[2K\\rrm -rf /\\n")
        out.write(b"\\x07ding \\x1b[2J\\x1b[Hcleared\\n")
        out.write("\\u009b31mc1 \\u009d0;eight-bit\\u009cdone\\n".encode())
        out.flush()
        sys.stderr.write("\\x1b[1mbold error\\x1b[0m\\n")
        fd = int(os.environ["OPSROOM_EVENTS_FD"])
        for event in (
            {"type": "progress", "percent": 50, "message": "\\x1b]52;c;eA==\\x07half"},
            {"type": "table", "rows": [{"host": "\\x1b[32mweb1\\x1b[0m"}]},
            {"type": "status", "text": "\\x1b]0;pwned\\x07finished", "level": "success"},
        ):
            os.write(fd, (json.dumps(event) + "\\n").encode())
    '''
)
# Bytes a terminal would obey: ESC, BEL, and the UTF-8 forms of CSI, OSC, DCS and ST (C1).
OBEYED = [b"\x1b", b"\x07", b"\xc2\x9b", b"\xc2\x9d", b"\xc2\x90", b"\xc2\x9c"]
SHOWN = [
    "red alert",
    "copied",
    "click here",
    "title",
    "safe␍rm -rf /",
    "␇ding cleared",
    "c1 done",
    "bold error",
    "web1",
    "half",
    "finished",
]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "esc").mkdir(parents=True)
    (root / "esc" / "show.py").write_text(SCRIPT)
    return root


def _assert_safe(raw: bytes) -> None:
    for seq in OBEYED:
        assert seq not in raw, f"{seq!r} reached the terminal"
    text = raw.decode()
    for shown in SHOWN:
        assert shown in text, f"{shown!r} is missing"


def test_opsroom_run_writes_no_control_sequence(catalog: Path) -> None:
    r = subprocess.run(
        [OPSROOM, "run", "--catalog", str(catalog), "!esc show"],
        cwd=catalog.parent,
        capture_output=True,
        check=False,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
    )
    assert r.returncode == 0, r.stderr
    _assert_safe(r.stdout + r.stderr)


def test_opsroom_run_json_escapes_controls_and_keeps_the_output(catalog: Path) -> None:
    r = subprocess.run(
        [OPSROOM, "run", "--json", "--catalog", str(catalog), "!esc show"],
        cwd=catalog.parent,
        capture_output=True,
        check=False,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
    )
    assert r.returncode == 0, r.stderr
    for seq in OBEYED:
        assert seq not in r.stdout, f"{seq!r} written raw in --json output"
    summary = json.loads(r.stdout.splitlines()[-1])
    # The data itself is not changed: JSON carries it exactly, escaped.
    assert "\x1b[31mred\x1b[0m alert" in summary["output"]
    assert "\x9b31mc1 \x9d0;eight-bit\x9cdone" in summary["output"]


def test_opsroom_shell_on_a_terminal_writes_no_control_sequence(catalog: Path) -> None:
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen(
            [OPSROOM, "shell", "--catalog", str(catalog)],
            cwd=catalog.parent,
            stdin=subprocess.PIPE,
            stdout=secondary,
            stderr=secondary,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
        )
        os.close(secondary)
        assert proc.stdin is not None
        proc.stdin.write(b"esc show\nexit\n")
        proc.stdin.close()
        raw = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the shell exited and closed the terminal
                break
            if not chunk:
                break
            raw += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
    # The terminal turns \n into \r\n on output; that carriage return is the tty's own.
    _assert_safe(raw.replace(b"\r\n", b"\n"))
