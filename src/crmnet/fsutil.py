"""Atomic outputs: nothing is ever half-written under its final name.

Every command that writes a file or a directory writes it under a temporary sibling name and renames it
into place only when it is complete. A crash, Ctrl-C or an error leaves the final name untouched (and
the temporary removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from crmnet.errors import CrmnetError, OutputExistsError


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrmnetError(f"{parent}: cannot create the output directory ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise CrmnetError(f"{path}: cannot write here (directory {parent} is not writable)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(tmp: Path, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        # A directory cannot be renamed over a non-empty one: move the old one aside first so the
        # final name is never missing a complete version for longer than two renames.
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False, mode: str = "w") -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. Refuses an existing ``path`` unless ``overwrite``.
    """
    path = Path(path)
    _check_target(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    os.chmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; the result should look like any other output
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; whatever the caller creates there is renamed to ``path``.

    The caller may create a file or a directory at the yielded path.
    """
    path = Path(path)
    _check_target(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.rmdir()  # the caller decides whether it becomes a file or a directory
    try:
        yield tmp
        if not tmp.exists():
            raise CrmnetError(f"{path}: nothing was written")
        _replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (overwrites by default: used for small result files)."""
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write(text)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 8 MiB blocks.

    algorithm: any ``hashlib`` name, or ``"git-blob"``: the id git gives the file's content,
    ``sha1(b"blob <size>\\0" + content)`` (what GitHub shows for a file at a commit).
    """
    if algorithm == "git-blob":
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % os.path.getsize(path))
    else:
        digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def refuse_existing(*paths: str | os.PathLike | None, overwrite: bool = False) -> None:
    """Raise OutputExistsError for the first of ``paths`` that exists, unless ``overwrite``.

    Commands call it before their work starts, so minutes of work are not lost to an output that the
    atomic writer would refuse at the end.
    """
    if overwrite:
        return
    for path in paths:
        if path is not None and Path(path).exists():
            raise OutputExistsError(path)
