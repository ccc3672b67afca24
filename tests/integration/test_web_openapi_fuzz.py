"""The JSON API as schemathesis sees it: generated requests from the OpenAPI never get a 5xx."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_web_serve import start_serve

from support import OPSROOM


def test_no_generated_api_request_gets_a_server_error(workdir: Path) -> None:
    s = start_serve(workdir)
    try:
        with s.login() as c:
            token = c.post("/api/v1/tokens", json={"name": "fuzz"}).json()["token"]
        st = Path(OPSROOM).with_name("st")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        proc = subprocess.run(
            [
                str(st),
                "run",
                f"{s.url}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "8",
                "--exclude-path-regex",
                "/events$",  # an endless stream by design
                "--exclude-method",
                "DELETE",
                "--request-timeout",
                "20",
                "--url",
                s.url,
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
    finally:
        s.stop()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
