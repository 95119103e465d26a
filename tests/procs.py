"""Real processes for end-to-end tests: ``secreview serve``/``worker`` and a throwaway Redis."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent


def secreview_argv(binary: str | None = None) -> list[str]:
    """How to run ``secreview``: the installed executable ``binary`` (``SECREVIEW_E2E_BIN``, set by
    ``.ci/run`` to a plain ``pip install .`` venv), else this checkout under the test interpreter.
    """
    if not binary:
        return [sys.executable, "-m", "bot.cli"]
    path = Path(binary)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"SECREVIEW_E2E_BIN={binary!r} is not an executable file")
    return [str(path)]


# Read once at import: conftest's autouse fixture clears SECREVIEW_* before each test runs.
SECREVIEW = secreview_argv(os.environ.get("SECREVIEW_E2E_BIN"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Proc:
    """A child process with its output in a log file; stopped (or killed) on exit."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.argv = list(argv)
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        """Start the process (in its own process group, so children die with it)."""
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return self

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks — a crash."""
        if self.proc is not None and self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.proc is None or not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def wait_http(url: str, timeout: float = 20.0, proc: Proc | None = None) -> None:
    """Wait until ``url`` answers (any status), failing early if ``proc`` died."""

    def up() -> bool:
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.argv} exited early:\n{proc.log()[-3000:]}")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    wait_for(up, timeout, url)


class RedisServer:
    """A private redis-server on a free port (for tests that stop Redis)."""

    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        # The shipped docker-compose.yml runs Redis with the append-only file: a restart keeps data.
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def available() -> bool:
        """Whether a redis-server binary is on PATH."""
        return shutil.which("redis-server") is not None

    def start(self) -> RedisServer:
        """Start it with no persistence and wait until it answers."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, f"redis-server on {self.port}")
        client.close()
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM: with the append-only file, nothing written is lost)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port and directory."""
        self.stop()
        time.sleep(down_s)
        self.start()
