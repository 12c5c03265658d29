"""The run directory as a thing crmnet owns: recognising it, creating, replacing and resuming it safely.

Policy (docs/guarantees.md):

* A *run directory* is one that crmnet wrote: a ``config.json`` holding a JSON object, and nothing but
  the names a run writes (:data:`RUN_FILES`, :data:`LOG_FILES`) and the temporary files of their atomic
  writes. ``--overwrite`` replaces only such a directory (or an empty one); a directory holding any other
  file, a file, or a link is refused.
* Everything is checked before anything is touched (:func:`check_output` has no side effects; the store,
  the model and the device are checked by :mod:`crmnet.training.checks`), so a typo never costs a run.
* While a run trains, its directory is locked (``flock``): a second ``train`` on the same directory (a
  ``--resume`` while it still runs, or two ``--overwrite``) is refused instead of corrupting it.
* ``--resume`` removes the ``.NAME.XXXXXXXX.tmp`` files that a killed run's atomic writes left behind
  (only for the names a run writes) and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crmnet.errors import CrmnetError, InputError, OutputExistsError
from crmnet.fsutil import write_text_atomic

CONFIG = "config.json"
RUN_FILES = frozenset({CONFIG, "best.ckpt", "last.ckpt", "state.pt", "metrics.json", "learning_curve.png",
                       "logs"})
LOG_FILES = frozenset({"steps.csv", "epochs.csv", "tensorboard"})


@dataclass(frozen=True)
class Layout:
    """What crmnet writes in an output directory it owns.

    ``names`` maps a subdirectory ("" for the directory itself) to the entries written there; ``kind`` names
    it in messages.
    """

    kind: str
    names: dict[str, frozenset[str]]


RUN = Layout("training run", {"": RUN_FILES, "logs": LOG_FILES})
# crmnet.fsutil's atomic writes of NAME go through siblings ".NAME.<8 mkstemp characters>.tmp" (the data),
# ".lock" (held while writing) and ".old" (the previous version, moved aside for the final rename)
_TMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?P<kind>tmp|lock|old)$")


def _orphans(directory: Path, names: frozenset[str]) -> list[Path]:
    """The files of interrupted atomic writes of ``names`` in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if (m := _TMP.match(p.name)) and m["name"] in names and p.is_file() and not p.is_symlink())


def foreign_entries(out: Path, layout: Layout = RUN) -> list[str]:
    """Entries of ``out`` that crmnet does not write there.

    Entries of ``out`` (and of its subdirectories in ``layout``) that crmnet does not write there, as
    relative names (links count as foreign: replacing the directory must never reach beyond it).
    """
    foreign = []
    for sub, names in layout.names.items():
        directory = out / sub if sub else out
        if sub and (directory.is_symlink() or not directory.exists()):
            continue  # a link is reported by its parent; a missing subdirectory holds nothing
        if not directory.is_dir():
            foreign.append(sub)
            continue
        tmp = set(_orphans(directory, names))
        foreign += [str(p.relative_to(out)) for p in sorted(directory.iterdir())
                    if (p.name not in names or p.is_symlink()) and p not in tmp]
    return foreign


def _looks_like_config(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def check_output(out: Path, *, resume: bool, overwrite: bool, layout: Layout = RUN) -> None:
    """Check that ``out`` can become (or be resumed as) this run's directory; changes nothing.

    Raises
    ------
    OutputExistsError
        ``out`` exists and neither ``overwrite`` nor ``resume``.
    InputError
        ``resume`` and ``out`` is not a run directory.
    CrmnetError
        ``overwrite`` of something that is not a run directory, or ``out`` cannot be created.
    """
    if resume:
        if not (out / CONFIG).is_file():
            raise InputError(out, "not a training run directory (no config.json): nothing to resume")
        return
    if out.is_symlink() or out.exists():
        if not overwrite:
            raise OutputExistsError(out, "pass --overwrite to replace it" + (" or --resume to continue it"
                                                                                 if layout is RUN else ""))
        if out.is_symlink() or not out.is_dir():
            raise CrmnetError(f"{out}: exists and is not a directory; --overwrite replaces only a "
                              f"{layout.kind} directory")
        foreign = foreign_entries(out, layout)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise CrmnetError(f"{out}: holds files a {layout.kind} does not write ({shown}); --overwrite "
                              f"replaces only a {layout.kind} directory crmnet wrote: choose another --out")
        if any(out.iterdir()) and not _looks_like_config(out / CONFIG):
            raise CrmnetError(f"{out}: not a {layout.kind} directory (no readable config.json); refusing to "
                              "replace it")
        return
    _check_creatable(out)


def _check_creatable(out: Path) -> None:
    """``out`` does not exist: its nearest existing ancestor must be a writable directory."""
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CrmnetError(f"{out}: cannot create the run directory ({ancestor} is not a directory)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CrmnetError(f"{out}: cannot create the run directory ({ancestor} is not writable)")


@contextlib.contextmanager
def run_directory(out: Path, config_json: str | None, *, resume: bool, overwrite: bool,
                  layout: Layout = RUN) -> Iterator[None]:
    """Create, replace or reopen run directory ``out`` and hold its lock for the duration.

    Call :func:`check_output` (and the other checks) first. ``config_json`` is written as
    ``config.json`` (None when resuming). An existing run is replaced (``overwrite``) by removing what
    it holds, ``config.json`` last, so that an interrupted removal leaves a directory still recognised
    as a run.
    """
    if resume:
        with _locked(out):
            _sweep(out, layout)
            yield
        return
    created = not out.exists()
    if created:
        _create(out)
    try:
        with _locked(out):
            if not created:
                check_output(out, resume=False, overwrite=overwrite, layout=layout)  # again, under the lock
                _clear(out)
            write_text_atomic(out / CONFIG, config_json, overwrite=True)
            yield
    except BaseException:
        if created and not (out / CONFIG).exists():  # nothing of the run was written: leave nothing
            shutil.rmtree(out, ignore_errors=True)
        raise


def _create(out: Path) -> None:
    missing = [p for p in [out, *out.absolute().parents] if not p.exists()]
    try:
        out.mkdir(parents=True)
    except FileExistsError:  # created meanwhile by another process
        raise OutputExistsError(out, "another process created it meanwhile") from None
    except OSError as exc:
        for p in reversed(missing[1:]):  # the parents this call created, innermost first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise CrmnetError(f"{out}: cannot create the run directory ({exc.strerror})") from None


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CrmnetError(f"{out}: another crmnet process is training in this run directory") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _clear(out: Path) -> None:
    for p in sorted(out.iterdir(), key=lambda p: p.name == CONFIG):  # config.json last
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _sweep(out: Path, layout: Layout) -> None:
    """Remove the leftovers of atomic writes killed midway (the run's lock is held: no writer is running).

    A moved-aside previous version whose file is missing is put back instead (the only complete one).
    """
    stale = [p for sub, names in layout.names.items() for p in _orphans(out / sub if sub else out, names)]
    for p in stale:
        target = p.with_name(_TMP.match(p.name)["name"])
        if p.name.endswith(".old") and not os.path.lexists(target):
            os.replace(p, target)
        else:
            p.unlink(missing_ok=True)
    if stale:
        print(f"crmnet: cleaned up {len(stale)} leftover file(s) of writes interrupted in {out}",
              file=sys.stderr)
