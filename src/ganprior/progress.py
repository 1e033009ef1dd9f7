"""Progress bars that only appear on a terminal.

A bar redrawn with carriage returns is useful on a terminal and noise in a log file or a CI
capture (one line per refresh). `progress_bar` shows tqdm's bar when its stream (stderr by
default) is a terminal and nothing otherwise; `close_bars` ends every bar still on screen so
that what is printed next (an `error:` line) starts on its own line.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def on_terminal(stream=None) -> bool:
    """Whether `stream` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable=None, *, desc: str | None = None, total: int | None = None,
                 unit: str = "it", enabled: bool = True, file=None, **kwargs) -> tqdm:
    """A tqdm bar, drawn only when `enabled` and `file` (default: stderr) is a terminal.

    Use it like tqdm: iterate over it, or call `.update(n)`, `.set_postfix(...)` and `.close()`;
    a hidden bar accepts the same calls and prints nothing.
    """
    file = sys.stderr if file is None else file
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=file,
                disable=not (enabled and on_terminal(file)), **kwargs)


def close_bars() -> None:
    """Close every tqdm bar still open (each ends its line), e.g. before printing an error
    raised from inside a loop that was drawing one."""
    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar whose stream is gone: nothing left to tidy
            pass
