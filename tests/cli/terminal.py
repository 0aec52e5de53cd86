"""The `tracekit` command in a real terminal: a pseudo-terminal that is the child's controlling terminal (as a
terminal emulator sets it up), with a fresh HOME and no XDG_* or TRACEKIT_* variables, as a first-time user has."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path


def tracekit_command() -> str:
    """The `tracekit` console script installed beside this interpreter (what `pip install` put on PATH)."""
    script = Path(sys.executable).with_name("tracekit")
    return str(script) if script.exists() else (shutil.which("tracekit") or "tracekit")


def fresh_environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who never ran tracekit: HOME is `home`, no XDG_* or TRACEKIT_* variables."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XDG_", "TRACEKIT_", "OTEL_", "APPLICATIONINSIGHTS_"))}
    env.update(HOME=str(home), TERM="xterm-256color", LANG="C.UTF-8", **extra)
    return env


def default_store(home: Path) -> Path:
    """Where a first run puts the store (platformdirs' user data directory under a fresh HOME)."""
    return home / ".local" / "share" / "tracekit" / "traces.duckdb"


class TerminalSession:
    """A child process on a pseudo-terminal of 120x40; its output is drained in the background."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # the child: the pty is now its controlling terminal, stdin/stdout/stderr
            try:
                os.chdir(cwd)
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self._output = bytearray()
        self._lock = threading.Lock()
        self._status: int | None = None
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child side closed, or we closed the master
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def hang_up(self) -> None:
        """Close the terminal, as closing its window does: the kernel sends SIGHUP to the foreground process."""
        os.close(self.master)
        self.master = -1

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.poll() is not None:
                raise AssertionError(f"tracekit exited ({self._status}) while waiting for {what}:\n{self.output[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.output[-3000:]}")

    def poll(self) -> int | None:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"tracekit did not exit within {timeout}s:\n{self.output[-3000:]}")
            time.sleep(0.05)
        return self._status  # type: ignore[return-value]

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the command to exit and return its status and everything it wrote to the terminal."""
        status = self.wait(timeout)
        self._reader.join(timeout)
        return status, self.output

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self._status = -signal.SIGKILL

    def close(self) -> None:
        self.kill()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
