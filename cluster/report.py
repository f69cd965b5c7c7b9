"""Progress bar and one result line per device (rich), plus the device's output.

Output goes to stdout; the progress bar is drawn only on a terminal (so pipes and tests see
plain lines). Device output is printed without markup so `[` in it stays literal.
"""
from __future__ import annotations

import sys
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from cluster.fanout import Result


class Reporter:
    """Context manager: `with Reporter(title, n) as rep: ... rep.done(result)`."""

    def __init__(self, title: str, total: int, *, show_output: bool = True, file: IO[str] | None = None, width: int = 12) -> None:
        self.console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True)
        self.show_output = show_output
        self.width = width
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True, disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task(title, total=total)
        self.results: list[Result] = []

    def __enter__(self) -> "Reporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def line(self, r: Result) -> Text:
        name = r.device.ljust(self.width)
        if r.skipped:
            return Text.assemble((name, "bold"), ("  SKIPPED  ", "yellow"), r.error or "")
        if r.unreachable:
            return Text.assemble((name, "bold"), ("  UNREACHABLE  ", "bold red"), r.error or "")
        if r.error is not None:
            st = "" if r.status is None else f"exit {r.status}: "
            return Text.assemble((name, "bold"), ("  FAILED  ", "bold red"), st + r.error)
        style = "green" if r.status == 0 else "bold red"
        word = "ok" if r.status == 0 else "FAILED"
        return Text.assemble((name, "bold"), (f"  {word}  ", style), f"exit {r.status}  ({r.seconds:.2f}s)")

    def done(self, r: Result) -> None:
        """Print the result line (and output) of one device and advance the bar."""
        self.results.append(r)
        self.console.print(self.line(r))
        if self.show_output:
            for stream, text in (("", r.stdout), ("!", r.stderr)):
                for ln in text.rstrip("\n").splitlines() if text.strip() else []:
                    self.console.print(Text(f"  {r.device}{stream}| {ln}"))
        self.progress.advance(self.task)

    def summary(self) -> str:
        ok = sum(1 for r in self.results if r.ok)
        unreach = sum(1 for r in self.results if r.unreachable)
        skipped = sum(1 for r in self.results if r.skipped)
        failed = len(self.results) - ok - unreach - skipped
        parts = [f"{ok} ok"]
        if failed:
            parts.append(f"{failed} failed")
        if unreach:
            parts.append(f"{unreach} unreachable")
        if skipped:
            parts.append(f"{skipped} skipped")
        return f"{len(self.results)} device(s): " + ", ".join(parts)
