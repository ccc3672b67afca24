"""Real git repositories for tests: a bare "remote" and a clone people commit and push from."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

AUTHOR = "Ann Author"


def git_env(home: Path, author: str = AUTHOR) -> dict[str, str]:
    """A clean environment for git: no user config, a fixed author."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OPSROOM_"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL="ann@example.org",
        GIT_COMMITTER_NAME=author,
        GIT_COMMITTER_EMAIL="ann@example.org",
    )
    return env


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run git; its stdout (raises with stderr on failure)."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class Remote:
    """A bare repository (the team's "GitLab") and a clone that commits and pushes."""

    bare: Path
    clone: Path
    home: Path

    @property
    def url(self) -> str:
        """The remote's URL, as `[catalog] git` names it."""
        return self.bare.as_uri()

    def write(self, relpath: str, text: str) -> Path:
        """Write a file in the clone (folders made as needed)."""
        path = self.clone / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def remove(self, relpath: str) -> None:
        """Delete a file from the clone."""
        (self.clone / relpath).unlink()

    def commit(self, message: str, *, author: str = AUTHOR) -> str:
        """Commit everything in the clone; the new commit's id."""
        env = git_env(self.home, author)
        git("add", "-A", cwd=self.clone, env=env)
        git("commit", "-q", "-m", message, cwd=self.clone, env=env)
        return self.head()

    def push(self, branch: str = "main") -> None:
        """`git push origin HEAD:<branch>`, a real push."""
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.clone, env=self.env)

    def head(self) -> str:
        """The clone's HEAD commit."""
        return git("rev-parse", "HEAD", cwd=self.clone, env=self.env).strip()

    @property
    def env(self) -> dict[str, str]:
        """The environment its git commands run with."""
        return git_env(self.home)


def make_remote(root: Path) -> Remote:
    """An empty bare repository on branch main, and a clone of it."""
    home = root / "git-home"
    home.mkdir(parents=True, exist_ok=True)
    env = git_env(home)
    bare = root / "scripts.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root, env=env)
    clone = root / "scripts"
    git("clone", "-q", str(bare), str(clone), cwd=root, env=env)
    git("checkout", "-q", "-b", "main", cwd=clone, env=env)
    return Remote(bare, clone, home)


HELLO = '''"""Say hello."""


def main(name: str = "world") -> str:
    """Greet someone.

    Args:
        name: who to greet
    """
    return f"hello {name}"
'''


class GitHttp:
    """`git http-backend` behind a small HTTP server that wants one Basic-auth token.

    Records the Authorization headers it was sent, so a test can see what git sent.
    """

    def __init__(self, root: Path, *, user: str, token: str) -> None:
        import base64
        import http.server
        import threading

        self.root = root
        self.seen: list[str] = []
        expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: test output stays readable

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _cgi(self) -> None:
                auth = self.headers.get("Authorization", "")
                outer.seen.append(auth)
                if auth != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": os.environ.get("PATH", ""),
                    "GIT_PROJECT_ROOT": str(outer.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(length),
                    "REMOTE_USER": user,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                done = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                )
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        """The http:// URL of repository `name` under the root."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
