"""Running the project's commands for the demo, and showing them as a person would type them."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

# Piped to a file or CI, tables get room for paths instead of the 80-column default.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)

BIN = Path(sys.executable).parent  # the .venv's console scripts: rtcc-hub, camsim, ...


class DemoError(Exception):
    """A step did not do what the story needs; the message says which and why."""


class Shell:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "110"}
        self.started = time.monotonic()
        self._background: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._step = 0

    # -- showing -----------------------------------------------------------------------------

    def shown(self, text: str) -> str:
        """Paths shortened for reading: the demo's directory is `demo-run/`."""
        return text.replace(str(self.work), "demo-run").replace(str(BIN) + "/", "")

    def step(self, title: str) -> None:
        self._step += 1
        elapsed = time.monotonic() - self.started
        console.print()
        console.print(Text(f"[{elapsed:5.1f}s] {self._step}. {title}", style="bold cyan"))

    def say(self, text: str, *, style: str = "") -> None:
        console.print(Text(self.shown(text), style=style))

    def _echo(self, argv: Sequence[str], stdin: str | None) -> None:
        line = "$ " + " ".join(shlex.quote(self.shown(a)) for a in argv)
        if stdin is not None:
            line += "   (password on stdin)" if "\n" not in stdin.strip() else "   (stdin)"
        console.print(Text(line, style="bold"))

    def _output(self, text: str, *, limit: int) -> None:
        lines = [line for line in self.shown(text).rstrip().splitlines() if line.strip()]
        for line in lines[:limit]:
            console.print(Text("  " + line))
        if len(lines) > limit:
            console.print(Text(f"  … ({len(lines) - limit} more lines)", style="dim"))

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        ok: Sequence[int] = (0,),
        show: bool = True,
        limit: int = 40,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to the end; its output shown (trimmed); an unexpected exit status
        stops the demo with the output that explains it."""
        if show:
            self._echo(argv, stdin)
        try:
            proc = subprocess.run(
                list(argv),
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"{self.shown(argv[0])} did not finish in {timeout:.0f} s") from exc
        if show:
            self._output(proc.stderr + proc.stdout, limit=limit)
        if proc.returncode not in ok:
            if not show:
                self._output(proc.stderr + proc.stdout, limit=60)
            raise DemoError(
                f"`{self.shown(' '.join(argv[:3]))} …` exited {proc.returncode} "
                f"(expected {', '.join(map(str, ok))})"
            )
        return proc

    def json_lines(self, text: str) -> list[dict[str, Any]]:
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def start(
        self, name: str, argv: Sequence[str], *, show: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process; its output goes to demo-run/logs/NAME.log."""
        if show:
            self._echo(argv, None)
            self.say(f"  (running in the background; log: demo-run/logs/{name}.log)", style="dim")
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self._background.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.work / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait_for(
        self, what: str, predicate: Callable[[], Any], *, timeout: float, poll: float = 0.2
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self._background:
                if proc.poll() is not None and proc.returncode not in (0, -signal.SIGTERM):
                    raise DemoError(
                        f"{name} exited {proc.returncode} while waiting for {what}:\n"
                        + self.shown(self.log_tail(name))
                    )
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoError(f"gave up waiting {timeout:.0f} s for {what}")
            time.sleep(poll)

    def stop(self, proc: subprocess.Popen[bytes], *, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def stop_all(self) -> None:
        for _name, proc in reversed(self._background):
            self.stop(proc)
        self._background.clear()
