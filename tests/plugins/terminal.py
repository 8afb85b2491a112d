"""Driving the CLI through a pseudo-terminal, as a person at a real terminal would."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

from .legacy_apps import environment


class Terminal:
    """The CLI on the far side of a pseudo-terminal, read until each prompt."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the CLI with the pty as its terminal
            try:
                os.chdir(cwd)
                env = environment(COLUMNS="120", LINES="40")
                env.pop("NO_COLOR", None)
                # as at a real terminal: a test runner started in the background (where
                # the shell ignores SIGINT) must not pass that on, or Ctrl-C does nothing
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execve(sys.executable, [sys.executable, "-m", "flask_refactor", *args], env)
            finally:
                os._exit(127)  # never run the rest of the test suite in the child
        self.output = b""

    def expect(self, pattern: re.Pattern, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while not pattern.search(self.output):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern.pattern!r} in output:\n{self.output.decode(errors='replace')}")
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"exited before {pattern.pattern!r}:\n{self.output.decode(errors='replace')}")
                self.output += chunk
        seen, self.output = self.output, self.output[pattern.search(self.output).end():]
        return seen

    def answer(self, key: str) -> None:
        self.send(key + "\r")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def interrupt(self, wait: float = 2, tries: int = 5) -> None:
        """Ctrl-C, pressed again while the CLI has not ended after `wait` seconds, as a
        person would. One pressed after a prompt is written but before `input()` starts
        reading is seen by Python only once the read returns, so the CLI waits for a
        second one (under load, the test's first press sometimes lands there)."""
        for _ in range(tries):
            self.send("\x03")
            if self._read_until_closed(wait):
                return

    def finish(self, timeout: float = 60) -> tuple[int, bytes]:
        if not self._read_until_closed(timeout):
            os.kill(self.pid, signal.SIGKILL)  # hung: fail the test rather than the whole run
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status), self.output

    def _read_until_closed(self, timeout: float) -> bool:
        """Read the output until the CLI closes the terminal (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                self.output += chunk
                if not chunk:
                    return True
        return False
