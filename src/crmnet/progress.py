"""Progress for every long command: a tqdm bar on a terminal, periodic log lines everywhere else.

A bar that only draws on a terminal leaves a run under CI, ``nohup`` or a web job silent for minutes;
:func:`progress` therefore returns a tqdm bar that, when standard error is not a terminal, prints one
plain line (count, rate, ETA) every ``interval`` seconds and a last line when it closes. Callers use the
ordinary tqdm API (``update``, ``set_postfix``, context manager), so the choice is made here once.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

#: seconds between log lines when standard error is not a terminal ($CRMNET_PROGRESS_INTERVAL overrides)
DEFAULT_INTERVAL = 30.0


def _interval() -> float:
    value = os.environ.get("CRMNET_PROGRESS_INTERVAL")
    try:
        return float(value) if value else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


class _LogLines(tqdm):
    """tqdm that never draws a bar; it writes one summary line per interval to standard error."""

    def __init__(self, *args, interval: float | None = None, **kwargs):
        self._every = _interval() if interval is None else interval
        self._last = time.monotonic()
        kwargs.setdefault("file", sys.stderr)
        kwargs["leave"] = False  # tqdm would end a kept bar with a bare newline
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):  # tqdm calls this to draw; lines are written in update/close
        return True

    def _line(self) -> str:
        d = self.format_dict
        unit = (d.get("unit") or "it").strip()  # " sequences": spaced for the terminal bar
        rate = d.get("rate") or (d["n"] / d["elapsed"] if d.get("elapsed") else 0.0)
        done = f"{self.format_sizeof(d['n']) if d.get('unit_scale') else d['n']}"
        total = d.get("total")
        if total:
            frac = f"{d['n'] / total:.0%} "
            rest = f", ETA {self.format_interval((total - d['n']) / rate) if rate else '?'}"
            done += f"/{self.format_sizeof(total) if d.get('unit_scale') else total}"
        else:
            frac, rest = "", ""
        return f"{self.desc or 'progress'}: {frac}{done} {unit} at {rate:,.1f} {unit}/s{rest}"

    def update(self, n=1):
        out = super().update(n)
        if self.disable:  # --quiet: tqdm set up nothing to write with
            return out
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            print(self._line(), file=self.fp, flush=True)
        return out

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            return super().__exit__(exc_type, exc_value, traceback)
        # The command failed: its one-line error is the last word, not a "(done)" line.
        if not self.disable:
            self.disable = True
            self._decr_instances(self)
        return False

    def close(self):
        if self.disable:
            return
        print(self._line() + " (done)", file=self.fp, flush=True)
        # tqdm's own close would clear a bar with a carriage return; there is no bar to clear.
        self.disable = True
        self._decr_instances(self)


def progress(*args, enable: bool = True, interval: float | None = None, **kwargs) -> tqdm:
    """A progress bar for a long loop, suited to where standard error goes.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`tqdm.tqdm` (``total``, ``desc``, ``unit``, ``unit_scale``, ...).
    enable : bool
        ``False`` gives a silent bar (``--quiet``).
    interval : float, optional
        Seconds between log lines when standard error is not a terminal.

    Returns
    -------
    tqdm
        A drawing bar on a terminal; otherwise one that prints periodic ``desc: n/total unit at rate,
        ETA`` lines.
    """
    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = not enable
    stream = kwargs["file"]
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(*args, **kwargs)
    return _LogLines(*args, interval=interval, **kwargs)
