"""A one-line progress bar for the file commands, on stderr, shown only on a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 20


class FileProgress:
    """How far a command has read through one file: a bar, bytes, events and events/s.

    ``read(bytes)`` and ``counted(events)`` move it; it redraws one line (at
    most every ``redraw_s``) with a carriage return, and :meth:`close` draws
    the final state and ends the line. When ``stream`` is not a terminal
    (piped, redirected, under a process manager) it writes nothing.

    Ours rather than tqdm's: the line shows two quantities (bytes through the
    file and events/s), which tqdm can only add as an unformatted postfix, and
    it is thirty lines with no new dependency.
    """

    def __init__(
        self,
        what: str,
        total_bytes: int,
        stream: TextIO | None = None,
        redraw_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total_bytes = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.shown = self.stream.isatty()
        self.redraw_s = redraw_s
        self._clock = clock
        self._started = clock()
        self._drawn = -redraw_s
        self.bytes_read = 0
        self.events = 0

    def read(self, n_bytes: int) -> None:
        """``n_bytes`` more of the file were read."""
        self.bytes_read += n_bytes
        self._maybe_draw()

    def counted(self, events: int) -> None:
        """``events`` more events were processed."""
        self.events += events
        self._maybe_draw()

    def clear(self) -> None:
        """Blank the line, so that other output can start at its beginning (redrawn later)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = -self.redraw_s

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.shown:
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False

    def line(self, now: float) -> str:
        """The progress line at ``now`` (no terminal control characters).

        >>> progress = FileProgress("replay", 4_000_000, clock=lambda: 0.0)
        >>> progress.read(1_000_000); progress.counted(2_500)
        >>> progress.line(2.0)
        'replay [#####---------------]  25% 1.0/4.0 MB, 2,500 events, 1,250 events/s, 6 s left'
        """
        share = min(1.0, self.bytes_read / self.total_bytes) if self.total_bytes else 1.0
        filled = round(share * BAR_WIDTH)
        elapsed_s = max(now - self._started, 1e-9)
        text = (
            f"{self.what} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {share:4.0%} "
            f"{self.bytes_read / 1e6:.1f}/{self.total_bytes / 1e6:.1f} MB, "
            f"{self.events:,} events, {self.events / elapsed_s:,.0f} events/s"
        )
        if 0 < share < 1:
            text += f", {elapsed_s * (1 - share) / share:.0f} s left"
        return text

    def _maybe_draw(self) -> None:
        if self.shown:
            now = self._clock()
            if now - self._drawn >= self.redraw_s:
                self._draw(now)

    def _draw(self, now: float) -> None:
        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r" + self.line(now)[:width] + "\x1b[K")
        self.stream.flush()
        self._drawn = now

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
