"""Downloads of the public data: Zenodo records and pinned GitHub files, verified, resumable and atomic.

Contract:

* What can be fetched (``crmnet download NAME --out DIR``), from where, verified how and laid out where is
  the data catalogue, :data:`crmnet.data.catalogue.SOURCES`. Zenodo files are listed by the records API
  (``GET {zenodo}/api/records/<id>``: ``files[].key``, ``size``, ``checksum`` ``"md5:…"``, ``links.self``)
  and verified against its md5. GitHub files are pinned to a full commit hash and verified against the
  sha256 or the git blob id the catalogue holds for them (GitHub serves no checksums).
* A released model (``Source.checkpoint``) is imported once verified, with
  ``crmnet.zoo.importer.import_model``, into ``DIR/checkpoints/<name>.pt``: one command, a ready checkpoint.
* A file is downloaded to ``NAME.part`` and renamed only after its checksum matched, so nothing unverified
  ever carries the final name. An interrupted transfer is resumed with an HTTP ``Range`` request (on the
  next attempt or the next run); a checksum mismatch deletes the part and fails; a complete, verified file
  is skipped.
* Base URLs come from the function arguments, else ``$CRMNET_ZENODO_URL`` / ``$CRMNET_GITHUB_RAW_URL``,
  else the public sites (tests point them at a local server).
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from crmnet.data.catalogue import SOURCES, GithubFile, checkpoint_path
from crmnet.errors import CrmnetError, OutputExistsError
from crmnet.fsutil import file_digest

__all__ = ["SOURCES", "DownloadError", "GithubFile", "HTTPStatusError", "RemoteFile", "download", "fetch",
           "github_files", "parse_zenodo_record", "zenodo_files"]

ZENODO_URL = "https://zenodo.org"
GITHUB_RAW_URL = "https://raw.githubusercontent.com"
CHUNK = 1 << 20
IMPORTER = "crmnet.zoo.importer:import_model"


class DownloadError(CrmnetError):
    """A download that failed: network, HTTP status, size or checksum; names the URL or file."""


class HTTPStatusError(DownloadError):
    """The server refused (404, 403, 500…): retrying the same request will not help."""


class OversizeError(DownloadError):
    """The server sent more than the file's expected size: stopped there, the part deleted; no retry."""


# A file of unknown size (neither the catalogue nor the server says) is stopped here: the largest public
# file crmnet downloads is the 3 GB complex-medium training file.
MAX_UNSIZED_BYTES = 8 << 30


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, where to, and how to check it (``algorithm``: md5, sha256, git-blob)."""

    url: str
    dest: Path
    algorithm: str
    digest: str
    size: int | None


def _base(explicit: str | None, env: str, default: str) -> str:
    return (explicit or os.environ.get(env) or default).rstrip("/")


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0):
    request = urllib.request.Request(url, headers={"User-Agent": "crmnet", **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return exc  # range not satisfiable: the caller checks what it already has
        raise HTTPStatusError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def parse_zenodo_record(record: dict, base_url: str, record_id: str) -> list[dict]:
    """Files of a Zenodo records-API answer → ``[{"key", "size", "md5", "url"}]``.

    Accepts both shapes Zenodo has served: ``files`` as a list, or as ``{"entries": {...} | [...]}``.
    Any other shape (an error page's JSON, a changed API) is a :class:`DownloadError` naming the record.

    Parameters
    ----------
    record : dict
        The records API's JSON answer.
    base_url : str
        The Zenodo base URL the file URLs are built on.
    record_id : str
        The record, named in errors.

    Returns
    -------
    list of dict
        ``key``, ``size``, ``md5`` and ``url`` of each file.
    """
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list) or not files:
        raise DownloadError(f"Zenodo record {record_id}: the records API lists no files"
                            + ("" if isinstance(record, dict) else f" (it answered a JSON {type(record).__name__})"))
    return [_zenodo_entry(f, base_url, record_id) for f in files]


def _zenodo_entry(f, base_url: str, record_id: str) -> dict:
    """One file entry of a records-API answer, checked: key, md5, size and URL of the right types."""
    def bad(why: str) -> DownloadError:
        return DownloadError(f"Zenodo record {record_id}: malformed file entry ({why}): {str(f)[:200]}")

    if not isinstance(f, dict):
        raise bad("not a JSON object")
    key = f.get("key") or f.get("filename")
    checksum = f.get("checksum", "")
    if not isinstance(key, str) or not key or not isinstance(checksum, str) or not checksum.startswith("md5:"):
        raise bad("without a key or an md5 checksum")
    if Path(key).name != key or key in (".", ".."):  # a key becomes a file name under DIR: no paths
        raise DownloadError(f"Zenodo record {record_id}: refusing file key {key!r} (not a plain file name)")
    md5 = checksum[4:].lower()
    if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        raise bad(f"md5 {md5!r} is not 32 hex digits")
    size = f.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise bad(f"size {size!r} is not a byte count")
    links = f.get("links") or {}
    if not isinstance(links, dict):
        raise bad("links is not an object")
    url = links.get("self") or links.get("content")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise bad(f"link {url!r} is not an http(s) URL")
    if not url:
        url = f"{base_url}/api/records/{record_id}/files/{urllib.parse.quote(key)}/content"
    return {"key": key, "size": size, "md5": md5, "url": url}


def zenodo_files(record_id: str, keys: Iterable[str], dest_dir: Path, zenodo_url: str | None = None) -> list[RemoteFile]:
    """Ask the records API for ``record_id`` and return the files named ``keys`` (all if empty) under ``dest_dir``.

    Parameters
    ----------
    record_id : str
        The Zenodo record (e.g. ``"4436477"``).
    keys : iterable of str
        File names in the record; empty: all of them.
    dest_dir : Path
        Where they go.
    zenodo_url : str, optional
        Base URL; None: ``$CRMNET_ZENODO_URL`` or ``https://zenodo.org``.

    Returns
    -------
    list of RemoteFile
        One per file, checked against the record's md5.
    """
    base = _base(zenodo_url, "CRMNET_ZENODO_URL", ZENODO_URL)
    url = f"{base}/api/records/{record_id}"
    with _open(url, {"Accept": "application/json"}) as response:
        try:
            record = json.loads(response.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DownloadError(f"{url}: the records API did not answer JSON ({exc})") from None
    listed = {f["key"]: f for f in parse_zenodo_record(record, base, record_id)}
    keys = tuple(keys) or tuple(listed)
    missing = [k for k in keys if k not in listed]
    if missing:
        raise DownloadError(f"Zenodo record {record_id} has no file {missing[0]!r}; it has {sorted(listed)}")
    return [RemoteFile(listed[k]["url"], dest_dir / k, "md5", listed[k]["md5"], listed[k]["size"]) for k in keys]


def github_files(files: Iterable[GithubFile], out_dir: Path, github_url: str | None = None) -> list[RemoteFile]:
    """Pinned GitHub files as :class:`RemoteFile` s under ``out_dir`` (base URL: argument, env, or GitHub).

    Parameters
    ----------
    files : iterable of GithubFile
        Catalogued files (repository, commit, path, checksum, local layout).
    out_dir : Path
        The data directory.
    github_url : str, optional
        Base URL of raw files; None: ``$CRMNET_GITHUB_RAW_URL`` or ``https://raw.githubusercontent.com``.

    Returns
    -------
    list of RemoteFile
        One per file, its URL at the pinned commit.
    """
    base = _base(github_url, "CRMNET_GITHUB_RAW_URL", GITHUB_RAW_URL)
    return [
        RemoteFile(f"{base}/{f.repo}/{f.commit}/{urllib.parse.quote(f.path)}", out_dir / f.dest, f.algorithm, f.digest,
                   f.size)
        for f in files
    ]


def _transfer(remote: RemoteFile, part: Path, progress: bool) -> None:
    """Append the rest of ``remote`` to ``part`` (resuming with a Range request when ``part`` has bytes)."""
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have >= remote.size:
        return  # complete (or too long: the checksum will tell)
    headers = {"Range": f"bytes={have}-"} if have else {}
    response = _open(remote.url, headers)
    if isinstance(response, urllib.error.HTTPError):  # 416: the server has nothing after byte `have`
        response.close()
        return
    with response:
        status = getattr(response, "status", 200)
        if have and status != 206:
            have = 0  # the server ignored the range: start over
        total = remote.size
        if total is None and response.headers.get("Content-Length"):
            total = have + int(response.headers["Content-Length"])
        from crmnet.progress import progress as progress_bar

        bar = progress_bar(total=total, initial=have, unit="B", unit_scale=True, desc=remote.dest.name,
                           enable=progress)
        expected = response.headers.get("Content-Length")
        cap = remote.size if remote.size is not None else total if total is not None else MAX_UNSIZED_BYTES
        received = 0
        try:
            with open(part, "ab" if have else "wb") as fh:
                # never more than one byte past the cap is read: a server cannot fill the disk
                while block := response.read(min(CHUNK, cap - have - received + 1)):
                    if have + received + len(block) > cap:
                        raise OversizeError(f"{remote.url}: the server sent more than the expected {cap:,} bytes; "
                                            "stopped there and deleted the partial download")
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            bar.close()
        # http.client returns b"" instead of raising when the connection closes early: count the bytes.
        if expected is not None and received < int(expected):
            raise ConnectionError(f"connection closed after {received:,} of {int(expected):,} bytes")


def fetch(remote: RemoteFile, overwrite: bool = False, retries: int = 3, progress: bool = True) -> str:
    """Download one file to ``remote.dest`` via ``.part``; returns ``"skipped"`` or ``"downloaded"``.

    A complete, verified file is skipped; one that fails its checksum is replaced only with ``overwrite``.
    A transfer that breaks off is resumed up to ``retries`` times; the ``.part`` file stays for a later run.

    Parameters
    ----------
    remote : RemoteFile
        URL, destination and checksum.
    overwrite : bool
        Replace an existing file that fails its checksum.
    retries : int
        Resumed attempts after a broken transfer.
    progress : bool
        Show the transfer's progress.

    Returns
    -------
    str
        ``"skipped"`` or ``"downloaded"``.
    """
    dest = remote.dest
    if dest.exists():
        if file_digest(dest, remote.algorithm) == remote.digest:
            return "skipped"
        if not overwrite:
            raise OutputExistsError(dest, f"it does not match the expected {remote.algorithm}; pass --overwrite to "
                                          "download it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(remote, part, progress)
            break
        except OversizeError:
            part.unlink(missing_ok=True)
            raise
        except HTTPStatusError:
            raise
        except (OSError, DownloadError, http.client.HTTPException) as exc:  # a broken transfer: resume
            if attempt == retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{remote.url}: download failed ({exc}); {kept:,} bytes kept in {part}, "
                                    "run again to resume") from None
    size = part.stat().st_size
    if remote.size is not None and size < remote.size:
        raise DownloadError(f"{remote.url}: the server sent {size:,} of {remote.size:,} bytes; {part} kept, run again "
                            "to resume")
    digest = file_digest(part, remote.algorithm)
    if digest != remote.digest:
        part.unlink()
        raise DownloadError(f"{remote.url}: {remote.algorithm} mismatch (expected {remote.digest}, got {digest}); the "
                            "partial download was deleted")
    os.replace(part, dest)
    return "downloaded"


def _hook(spec: str, download_dir: Path) -> Callable:
    """The function named ``"module:function"``, imported now (it may live in a later stage)."""
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DownloadError(f"downloaded to {download_dir}, but {module_name} is not available to import it "
                            f"(needed: {spec})") from None
    func: Callable | None = getattr(module, func_name, None)
    if func is None:
        raise DownloadError(f"downloaded to {download_dir}, but {module_name} has no {func_name}() to import it")
    return func


def _import_checkpoint(name: str, model_file: Path, out: Path, overwrite: bool) -> Path:
    """Import a verified released model file as ``out/checkpoints/<name>.pt`` (skipped when it exists)."""
    ckpt = checkpoint_path(name, out)
    if ckpt.exists() and not overwrite:
        return ckpt
    return Path(_hook(IMPORTER, model_file)(model_file, ckpt, overwrite=overwrite, verify=True, name=name))


def download(
    names: Iterable[str],
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    zenodo_url: str | None = None,
    github_url: str | None = None,
    retries: int = 3,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Fetch the named :data:`SOURCES` into ``out``; returns the paths of the files it holds afterwards.

    Parameters
    ----------
    names : iterable of str
        Names in :data:`SOURCES` (``crmnet download --list``).
    out : path-like
        The data directory (files go to their catalogued layout under it).
    overwrite : bool
        Replace a file that fails its checksum (a verified file is always skipped).
    zenodo_url, github_url : str, optional
        Base URLs (None: ``$CRMNET_ZENODO_URL`` / ``$CRMNET_GITHUB_RAW_URL``, else the real sites).
    retries : int
        Resumed attempts per file after a broken transfer.
    progress : bool
        Show each file's progress.
    log : callable, optional
        Called with one line per file (skipped, downloaded, imported); None: nothing is reported.

    Returns
    -------
    list of Path
        Every file the named sources hold under ``out``, verified.
    """
    out = Path(out)
    names = list(names)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise DownloadError(f"unknown download {unknown[0]!r}; known: {', '.join(SOURCES)}")
    done: list[Path] = []
    for name in names:
        source = SOURCES[name]
        remotes = github_files(source.github, out, github_url)
        download_dir = out / f"zenodo{source.zenodo_record}" if source.zenodo_record else out
        if source.zenodo_record:
            remotes += zenodo_files(source.zenodo_record, source.zenodo_keys, download_dir, zenodo_url)
        for remote in remotes:
            status = fetch(remote, overwrite=overwrite, retries=retries, progress=progress)
            if log:
                log(f"{name}: {status} {remote.dest}")
            done.append(remote.dest)
        if source.checkpoint:
            ckpt = _import_checkpoint(name, remotes[0].dest, out, overwrite)
            if log:
                log(f"{name}: checkpoint {ckpt}")
            done.append(ckpt)
        if source.hook:
            made = list(_hook(source.hook, download_dir)(download_dir, out / (source.hook_out or name), overwrite))
            if log:
                log(f"{name}: imported {len(made)} file(s) into {out / (source.hook_out or name)}")
            done.extend(made)
    return done
