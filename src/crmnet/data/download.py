"""Downloads of the public data: Zenodo records and pinned GitHub files, verified, resumable and atomic.

Contract:

* :data:`SOURCES` names what can be fetched (``crmnet download NAME --out DIR``). Zenodo files are listed by
  the records API (``GET {zenodo}/api/records/<id>``: ``files[].key``, ``size``, ``checksum`` ``"md5:…"``,
  ``links.self``) and verified against its md5. GitHub files are pinned to a commit and verified against
  sha256 sums embedded here (GitHub serves no checksums; the sums are those of the copies in ``../shared``).
* Layout under ``DIR`` mirrors the shared data directory, so ``evaluate`` finds test sets by name:
  ``vaishnav2022/test/…``, ``vaishnav2022/peer_predictions/…``, ``legnet2023/…``; Zenodo records go to
  ``zenodo<record>/<key>``.
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

from crmnet.errors import CrmnetError, OutputExistsError
from crmnet.fsutil import file_digest

ZENODO_URL = "https://zenodo.org"
GITHUB_RAW_URL = "https://raw.githubusercontent.com"
VAISHNAV_REPO, VAISHNAV_COMMIT = "1edv/evolution", "bf4a419"
LEGNET_REPO, LEGNET_COMMIT = "autosome-ru/LegNet", "63773bb"
CHUNK = 1 << 20


class DownloadError(CrmnetError):
    """A download that failed: network, HTTP status, size or checksum; names the URL or file."""


class HTTPStatusError(DownloadError):
    """The server refused (404, 403, 500…): retrying the same request will not help."""


@dataclass(frozen=True)
class GithubFile:
    """A file pinned to a commit: ``{github}/{repo}/{commit}/{path}`` → ``DIR/{dest}``, verified by sha256."""

    repo: str
    commit: str
    path: str
    dest: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Source:
    """Something ``crmnet download`` can fetch.

    zenodo_record: a Zenodo record id whose files are listed by the records API; zenodo_keys: the file keys
    to take from it (empty: all). github: pinned GitHub files. hook: ``"module:function"`` called after the
    download as ``function(download_dir, out_dir, overwrite) -> list[Path]`` (imported only then).
    """

    description: str
    zenodo_record: str | None = None
    zenodo_keys: tuple[str, ...] = ()
    github: tuple[GithubFile, ...] = ()
    hook: str | None = None
    hook_out: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, where to, and how to check it (``algorithm`` is md5 or sha256)."""

    url: str
    dest: Path
    algorithm: str
    digest: str
    size: int | None


def _vaishnav(path: str, dest: str, sha256: str, size: int) -> GithubFile:
    return GithubFile(VAISHNAV_REPO, VAISHNAV_COMMIT, f"manuscript_code/model/{path}", f"vaishnav2022/{dest}", sha256,
                      size)


_TEST_SETS = (
    _vaishnav("reproduce_test_data_performance/Native_complex.csv", "test/Native_complex.csv",
              "59d81b20739815108de4ecf095f78a96042685ee14ed32b95d3ae37242f569b0", 562658),
    _vaishnav("reproduce_test_data_performance/Random_complex.csv", "test/Random_complex.csv",
              "d14fd0c396b1ff3687ad956f9163b1ae344c340fc5b9af79e99f2da818cae305", 446804),
    _vaishnav("results_summary/HQ_testdata.csv", "test/Random_complex_raw.csv",
              "a926d66254dc9d9c9e6a08e93bf74d3d2de7195579e7c54835ebe6680290540d", 721597),
    _vaishnav("results_summary/Random_testdata_complex_media.txt", "test/HQ_testdata_complex.txt",
              "094961bd5f207958306d663123f3150a201566bba9f8eb0b2924dd5e3bd693d6", 427196),
    _vaishnav("reproduce_test_data_performance/Native_defined.csv", "test/Native_defined.csv",
              "87722d2accaa1a0543b2258e56bd37c71d4832bd24a8c5231df836bcb2417643", 564919),
    _vaishnav("reproduce_test_data_performance/Random_defined.csv", "test/Random_defined.csv",
              "f76404dc7dd50a0dfc24a08cd6c509d8ddcc15c67dcea4340be4c96673dbc6f8", 1932203),
)

_PEERS = tuple(
    _vaishnav(f"results_summary/{src}", f"peer_predictions/{dest}", sha, size)
    for src, dest, sha, size in (
        ("Native_test_tpu_model.csv", "Native_complex_tpu_model.csv",
         "8bf354fca3c8db3e291a37735e4c4ee22f372a207d724993f72812a11f482aed", 562886),
        ("Native_test_gpu_model.csv", "Native_complex_gpu_model.csv",
         "8df07be722d4311de89f4477a5a360fe7571fce7935b0055e84b23662e4f37d4", 562720),
        ("Native_test_DeepSEA_model.csv", "Native_complex_DeepSEA_model.csv",
         "2dfe214c34dbd20e47a835b240d5b3070a1956db128d3cdbd640502a05b78273", 562397),
        ("Native_test_DanQ_model.csv", "Native_complex_DanQ_model.csv",
         "bce30c144d72ed985b8a22510591ffd5da55329846067b46eb45e2a6bb1ceb80", 562453),
        ("Native_test_DeepAtt_model.csv", "Native_complex_DeepAtt_model.csv",
         "ef65efe4203720cf7026af3483ae1cd549e82dfc40604b453238666ee5e655d0", 562481),
        ("Random_test_tpu_model.csv", "Random_complex_tpu_model.csv",
         "58b73a0f27ee3dffa528cb6adc20adb7a69a63f3ffebc833221ed8ee87ebc65f", 446997),
        ("Random_test_gpu_model.csv", "Random_complex_gpu_model.csv",
         "7280a7dc48611d111c9d65a79447ac900663a6f4bea9dc58b8b414881f5d030b", 446922),
        ("Random_test_DeepSEA_model.csv", "Random_complex_DeepSEA_model.csv",
         "9a91be563a4bd5014a6f831c265781db0558b20be7883fb200ab903098d3bbe0", 446728),
        ("Random_test_DanQ_model.csv", "Random_complex_DanQ_model.csv",
         "7ac4dbbcc426bfcd8fdc3df94bd33a7c181b5e9bf6fce635310820d03a98cc48", 446837),
        ("Random_test_DeepAtt_model.csv", "Random_complex_DeepAtt_model.csv",
         "695c78fb2a05081a77899776e47814b2f06b0ebac7c069526382bffee3cb4974", 446843),
        ("Native_test_tpu_model_defined_media.csv", "Native_defined_tpu_model.csv",
         "1c985dd57d9ff61e0a66272c0ecaf89d42659608b9c84e4b8abb3649a840241c", 570396),
        ("Native_test_gpu_model_defined_media.csv", "Native_defined_gpu_model.csv",
         "ff061f472723b45537a5681b1a26ffb0fd69b717a01bad60780c62e88db34fcd", 570098),
        ("Random_test_tpu_model_defined_media.csv", "Random_defined_tpu_model.csv",
         "48ef0b0dbac16eeff5e38328b39d81f7af6b912d313a9983a0ee50d67d4b715d", 800763),
        ("Random_test_gpu_model_defined_media.csv", "Random_defined_gpu_model.csv",
         "deabdb4c17e26fd8e675903f3e281d078091a42d9721cf71578ec70a2be3d764", 800422),
    )
)

_LEGNET = tuple(
    GithubFile(LEGNET_REPO, LEGNET_COMMIT, f"data/output/{name}", f"legnet2023/{name}", sha, size)
    for name, sha, size in (
        ("complex_Native.txt", "92ab1bef5bd36463dd8d4cf31f1f0362ad746f81b51b27138505799a5fb3fc1c", 508123),
        ("defined_Native.txt", "9b2ce39126b28af319b1336132aa2a52000c0ce820af9bef8df042fd4a02b419", 514697),
    )
)

SOURCES: dict[str, Source] = {
    "complex": Source("Vaishnav et al. complex-medium (YPD) training data, ~31 M rows (Zenodo 4436477)",
                      zenodo_record="4436477", zenodo_keys=("complex_media_training_data_Glu.txt",)),
    "defined": Source("Vaishnav et al. defined-medium (SC-Ura) training data, ~21 M rows (Zenodo 4436477)",
                      zenodo_record="4436477", zenodo_keys=("defined_media_training_data_SC_Ura.txt",)),
    "test-sets": Source(f"Vaishnav et al. test sets ({VAISHNAV_REPO} @ {VAISHNAV_COMMIT})", github=_TEST_SETS),
    "peer-predictions": Source(f"published peer predictions on the test sets ({VAISHNAV_REPO} @ {VAISHNAV_COMMIT})",
                               github=_PEERS),
    "legnet": Source(f"LegNet predictions on the native test sets ({LEGNET_REPO} @ {LEGNET_COMMIT})", github=_LEGNET),
    "crmnet-authors": Source("the CRMnet authors' trained Keras models (Zenodo 7375243), imported as checkpoints",
                             zenodo_record="7375243", hook="crmnet.zoo.keras:import_downloaded",
                             hook_out="crmnet_authors"),
}


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
    """
    files = record.get("files")
    if isinstance(files, dict):
        files = files.get("entries", [])
        files = list(files.values()) if isinstance(files, dict) else files
    if not isinstance(files, list) or not files:
        raise DownloadError(f"Zenodo record {record_id}: the records API lists no files")
    out = []
    for f in files:
        key = f.get("key") or f.get("filename")
        checksum = str(f.get("checksum", ""))
        if not key or not checksum.startswith("md5:"):
            raise DownloadError(f"Zenodo record {record_id}: file entry without a key or an md5 checksum: {f}")
        if Path(key).name != key or key in (".", ".."):  # a key becomes a file name under DIR: no paths
            raise DownloadError(f"Zenodo record {record_id}: refusing file key {key!r} (not a plain file name)")
        url = (f.get("links") or {}).get("self") or (f.get("links") or {}).get("content")
        if not url:
            url = f"{base_url}/api/records/{record_id}/files/{urllib.parse.quote(key)}/content"
        out.append({"key": key, "size": f.get("size"), "md5": checksum[4:].lower(), "url": url})
    return out


def zenodo_files(record_id: str, keys: Iterable[str], dest_dir: Path, zenodo_url: str | None = None) -> list[RemoteFile]:
    """Ask the records API for ``record_id`` and return the files named ``keys`` (all if empty) under ``dest_dir``."""
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
    base = _base(github_url, "CRMNET_GITHUB_RAW_URL", GITHUB_RAW_URL)
    return [
        RemoteFile(f"{base}/{f.repo}/{f.commit}/{urllib.parse.quote(f.path)}", out_dir / f.dest, "sha256", f.sha256,
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
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=remote.dest.name, leave=False)
        expected = response.headers.get("Content-Length")
        received = 0
        try:
            with open(part, "ab" if have else "wb") as fh:
                while block := response.read(CHUNK):
                    fh.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if bar is not None:
                bar.close()
        # http.client returns b"" instead of raising when the connection closes early: count the bytes.
        if expected is not None and received < int(expected):
            raise ConnectionError(f"connection closed after {received:,} of {int(expected):,} bytes")


def fetch(remote: RemoteFile, overwrite: bool = False, retries: int = 3, progress: bool = True) -> str:
    """Download one file to ``remote.dest`` via ``.part``; returns ``"skipped"`` or ``"downloaded"``.

    A complete, verified file is skipped; one that fails its checksum is replaced only with ``overwrite``.
    A transfer that breaks off is resumed up to ``retries`` times; the ``.part`` file stays for a later run.
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


def _call_hook(spec: str, download_dir: Path, out_dir: Path, overwrite: bool) -> list[Path]:
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
    return list(func(download_dir, out_dir, overwrite))


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
    """Fetch the named :data:`SOURCES` into ``out``; returns the paths of the files it holds afterwards."""
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
        if source.hook:
            made = _call_hook(source.hook, download_dir, out / (source.hook_out or name), overwrite)
            if log:
                log(f"{name}: imported {len(made)} file(s) into {out / (source.hook_out or name)}")
            done.extend(made)
    return done
