"""Atomic outputs: nothing is ever half-written under its final name, and nothing is replaced by mistake.

Every command that writes a file or a directory writes it under a temporary sibling name
(``.NAME.XXXX.tmp``) and renames it into place only when it is complete. A crash, Ctrl-C or an error
leaves the final name untouched (and the temporary removed); a full disk, a read-only or forbidden output
is an :class:`~crmnet.errors.OutputError` naming the output.

Policies (docs/guarantees.md):

* An existing output is refused unless ``overwrite``. The final rename refuses a target that appeared
  meanwhile (another run writing the same output: the later one fails, the first one's output stays).
* ``overwrite`` replaces a file, or a directory that crmnet wrote (it holds the marker :data:`MARKER`,
  which every directory written here gets, or it is a crmnet store) -- never a directory holding other
  files, never one of the command's inputs, never a directory that contains an input.
* A file-name component taken from a file (motif, sequence id, label, model name) goes through
  :func:`safe_component`; while :func:`atomic_path` is open, every write through this module must lie
  inside its temporary (the output root): a path that leaves it is refused, whatever built it.
* A run killed with SIGKILL cannot clean up: each temporary has a lock file (``.NAME.XXXX.lock``) held
  while it is written, and the next write of the same output removes temporaries whose lock is free.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from crmnet.errors import CrmnetError, OutputError, OutputExistsError

try:
    import fcntl
except ImportError:  # Windows: no flock; temporaries of killed runs are then never swept
    fcntl = None

MARKER = ".crmnet-output"  # in every directory written by atomic_path: what --overwrite may replace
# A write that fails for these reasons failed for lack of room or permission, not because of a bug.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
# The temporary directory of the innermost open atomic_path (per thread and task): writes must stay inside.
_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("crmnet_output_root", default=None)
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_component(name: object, fallback: str = "item", max_length: int = 80) -> str:
    """One file-name component from a name taken from a file (motif, sequence id, label, model name).

    Characters other than letters, digits and ``._+-`` become ``_`` (so ``/``, ``..`` chains, NUL and
    control characters cannot leave a directory or hide a file), leading dots are dropped, and the result
    is cut to ``max_length`` characters.

    Parameters
    ----------
    name : object
        The untrusted name (``str()`` of it is used).
    fallback : str
        Returned when nothing usable is left (an empty name, or only dots).
    max_length : int
        Longest result, in characters.

    Returns
    -------
    str
        A name that is one path component, never ``.``, ``..``, hidden or empty.
    """
    text = _UNSAFE.sub("_", str(name)).lstrip(".")[:max_length].rstrip(".")
    return text if text.strip("_") else fallback


def _check_root(path: Path) -> None:
    """Refuse ``path`` when it leaves the output root of the enclosing :func:`atomic_path`."""
    root = _ROOT.get()
    if root is not None and not _inside(Path(os.path.abspath(path)), root):
        raise OutputError(path, f"leaves the output directory being written ({root}); a name taken from a file "
                                "must not hold '/' or '..'; nothing was written")


def _is_crmnet_dir(path: Path) -> bool:
    if (path / MARKER).is_file():
        return True
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith("crmnet.")


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_replaceable(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise CrmnetError unless the existing ``path`` may be replaced under ``--overwrite``.

    Refused: one of ``inputs`` (or a directory holding one), and a directory crmnet did not write (see
    the module docstring). A missing ``path`` passes.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    real = path.resolve()
    for item in inputs:
        if str(item) == "-":
            continue
        item = Path(item).resolve()
        if item == real:
            raise CrmnetError(f"{path}: is an input of this command; --overwrite never replaces an input")
        if _inside(item, real):
            raise CrmnetError(f"{path}: holds the input {item}; --overwrite never replaces a directory holding an "
                              "input (choose another output)")
    if path.is_dir() and not path.is_symlink() and not _is_crmnet_dir(path):
        raise CrmnetError(f"{path}: is a directory that crmnet did not write (no {MARKER} or store manifest); "
                          "--overwrite replaces only crmnet's own outputs (remove it yourself, or choose another name)")


def mark_output(directory: str | os.PathLike) -> None:
    """Mark ``directory`` as written by crmnet (for directories not written through :func:`atomic_path`)."""
    from crmnet.version import __version__

    (Path(directory) / MARKER).write_text(json.dumps({"written_by": "crmnet", "version": __version__}) + "\n",
                                          encoding="utf-8")


def _check_target(path: Path, overwrite: bool, inputs: Iterable, directory: bool) -> None:
    if not str(path) or path.name in ("", ".", ".."):
        raise OutputError(path, "is not the name of a file or directory to write (give a new name)")
    _check_root(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(parent, f"cannot create the output directory ({exc.strerror})") from None
    if not parent.is_dir():
        raise OutputError(path, f"cannot write here ({parent} is not a directory)")
    sweep_orphans(path)
    if os.path.lexists(path):
        if not overwrite:
            raise OutputExistsError(path)
        if path.is_dir() and not directory:
            raise CrmnetError(f"{path}: is a directory; give the name of a file to write")
        check_replaceable(path, inputs)
    if not os.access(parent, os.W_OK):
        raise OutputError(path, f"cannot write here (directory {parent} is not writable)")


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists (atomically: renameat2 on Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(dst))
    if os.path.lexists(dst):  # no atomic way on this file system: check, then rename
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    os.rename(src, dst)


def _install(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the complete ``tmp`` to ``path``.

    A ``path`` that appeared meanwhile is refused unless ``overwrite``. With ``overwrite`` a file replaces a
    file in one atomic rename, so ``path`` never goes missing (a run killed then still finds its last
    ``state.pt``); a directory, which a rename cannot replace, moves the old one aside first and removes it
    after.
    """
    if overwrite and not tmp.is_dir() and os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
        os.replace(tmp, path)
        return
    old = None
    if overwrite and os.path.lexists(path):
        old = tmp.with_name(tmp.name[: -len(".tmp")] + ".old")
        os.replace(path, old)
    try:
        _rename_noreplace(tmp, path)
    except FileExistsError:
        raise OutputExistsError(path, "it appeared while this command ran (another run writing the same output?); "
                                      "nothing was replaced") from None
    except BaseException:
        if old is not None and not os.path.lexists(path):
            os.replace(old, path)
        raise
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_orphans(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by killed runs (their lock is free); returns them.

    Temporaries still locked belong to a running command and are kept; a moved-aside old version
    (``.old``) is removed only when ``path`` exists, so a complete version is never lost.
    """
    path = Path(path)
    removed = []
    if fcntl is None:
        return removed
    parent = path.parent if str(path.parent) else Path(".")
    for lock in parent.glob(f".{_glob_escape(path.name)}.*.lock"):
        stem = lock.name[: -len(".lock")]
        if not _TMP_SUFFIX.fullmatch(stem[len(path.name) + 2 :]):
            continue  # the temporary of another output whose name starts like this one
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a running command holds it
        try:
            for leftover in (parent / f"{stem}.tmp", parent / f"{stem}.old"):
                if leftover.suffix == ".old" and not os.path.lexists(path):
                    continue
                if os.path.lexists(leftover):
                    _remove(leftover)
                    removed.append(leftover)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


_TMP_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkstemp puts between prefix and suffix


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def _locked_sibling(path: Path) -> Iterator[Path]:
    """A fresh temporary name ``.NAME.XXXX.tmp`` beside ``path`` (nothing created there), its lock held."""
    try:
        fd, lock_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".lock", dir=path.parent)
    except OSError as exc:  # name the output the user gave, not crmnet's lock file beside it
        raise OutputError(path, f"cannot write here ({exc.strerror}); nothing was written") from None
    lock = Path(lock_name)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield lock.with_name(lock.name[: -len(".lock")] + ".tmp")
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _output_error(exc: BaseException, path: Path, tmp: Path) -> CrmnetError | None:
    """The one-line error for a failed write of ``path`` (through ``tmp``), or None when ``exc`` is not one."""
    if isinstance(exc, OutputError) and _inside(Path(os.path.abspath(exc.path)), Path(os.path.abspath(tmp))):
        # a file written inside a temporary directory: name it where it was to appear
        inner = path / Path(os.path.abspath(exc.path)).relative_to(os.path.abspath(tmp))
        return OutputError(inner, exc.problem)
    if not isinstance(exc, OSError) or isinstance(exc, CrmnetError):
        return None
    about_output = exc.filename is None or _inside(Path(os.path.abspath(exc.filename)), Path(os.path.abspath(tmp)))
    if exc.errno in _WRITE_ERRNOS or (exc.errno in _DENIED_ERRNOS and about_output):
        return OutputError(path, f"cannot write ({exc.strerror}); nothing was written")
    return None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False, mode: str = "w",
                inputs: Iterable[str | os.PathLike] = ()) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. Refuses an existing ``path`` unless ``overwrite``,
    and under ``overwrite`` a directory or one of ``inputs`` (see the module docstring).
    """
    path = Path(path)
    inputs = list(inputs)
    _check_target(path, overwrite, inputs, directory=False)
    with _locked_sibling(path) as tmp, _undo_on_error(tmp, path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _install(tmp, path, overwrite)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False,
                inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary sibling path; whatever the caller creates there is renamed to ``path``.

    The caller may create a file or a directory at the yielded path; a directory gets the :data:`MARKER`
    that lets a later ``overwrite`` replace it. Refusals as for :func:`atomic_file`.
    """
    path = Path(path)
    inputs = list(inputs)
    _check_target(path, overwrite, inputs, directory=True)
    with _locked_sibling(path) as tmp, _undo_on_error(tmp, path):
        token = _ROOT.set(Path(os.path.abspath(tmp)))
        try:
            yield tmp
        finally:
            _ROOT.reset(token)
        if not tmp.exists():
            raise CrmnetError(f"{path}: nothing was written")
        if tmp.is_dir():
            mark_output(tmp)
        _install(tmp, path, overwrite)


@contextlib.contextmanager
def _undo_on_error(tmp: Path, path: Path) -> Iterator[None]:
    """Clean up a failed write.

    On any failure inside: remove the temporary, and turn an operating-system refusal into one
    :class:`~crmnet.errors.OutputError` naming ``path`` (anything else propagates unchanged).
    """
    try:
        yield
    except BaseException as exc:
        _remove(tmp)
        error = _output_error(exc, path, tmp)
        if error is not None:
            raise error from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (overwrites by default: used for small result files)."""
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write(text)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    r"""Hex digest of a file's bytes, read in 8 MiB blocks.

    algorithm: any ``hashlib`` name, or ``"git-blob"``: the id git gives the file's content,
    ``sha1(b"blob <size>\0" + content)`` (what GitHub shows for a file at a commit).
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


def refuse_existing(*paths: str | os.PathLike | None, overwrite: bool = False,
                    inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise OutputExistsError for the first of ``paths`` that exists, unless ``overwrite``.

    Under ``overwrite``, raise unless each existing one may be replaced (:func:`check_replaceable`).

    Commands call it before their work starts, so minutes of work are not lost to an output that the
    atomic writer would refuse at the end.
    """
    inputs = list(inputs)
    for path in paths:
        if path is None:
            continue
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(path)
        if overwrite:
            check_replaceable(path, inputs)
