"""Downloads against a local HTTP server on 127.0.0.1: records API, Range resume, checksums, layout, hook."""

from __future__ import annotations

import hashlib
import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crmnet.cli import main
from crmnet.data import download as dl
from crmnet.errors import OutputExistsError

GLU = "complex_media_training_data_Glu.txt"
URA = "defined_media_training_data_SC_Ura.txt"


class FakeServer:
    """Serves ``files`` (URL path → bytes) with Range support and a Zenodo records API built from ``records``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.records: dict[str, list[str]] = {}  # record id → URL paths of its files
        self.drop_after: dict[str, int] = {}  # path → bytes sent before the connection drops (once)
        self.corrupt: set[str] = set()
        self.gone: set[str] = set()  # listed by the records API, but 404 when fetched
        self.ignore_range = False
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path
                server.log.append((path, self.headers.get("Range")))
                if path.startswith("/api/records/"):
                    record = path.rsplit("/", 1)[1]
                    if record not in server.records:
                        return self.send_error(404)
                    body = json.dumps({"id": record, "files": [server.entry(p) for p in server.records[record]]})
                    return self._send(200, body.encode(), {"Content-Type": "application/json"})
                if path not in server.files or path in server.gone:
                    return self.send_error(404)
                data = server.files[path]
                if path in server.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                status = 206 if start else 200
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
                cut = server.drop_after.pop(path, None)
                self._send(status, data[start:], headers, cut)

            def _send(self, status, body, headers, cut=None):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def entry(self, path: str) -> dict:
        data = self.files[path]
        return {"key": path.rsplit("/", 1)[1], "size": len(data),
                "checksum": "md5:" + hashlib.md5(data).hexdigest(), "links": {"self": self.url + path}}

    def gets(self, suffix: str) -> list[str | None]:
        return [rng for path, rng in self.log if path.endswith(suffix)]


@pytest.fixture
def server():
    s = FakeServer()
    s.thread.start()
    payload = bytes(range(256)) * 4000  # 1 MB, more than one read chunk
    s.files[f"/files/{GLU}"] = payload
    s.files[f"/files/{URA}"] = payload[::-1]
    s.records["4436477"] = [f"/files/{GLU}", f"/files/{URA}"]
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _get(server, names, out, **kw):
    kw.setdefault("progress", False)
    return dl.download(names, out, zenodo_url=server.url, github_url=server.url, **kw)


def test_parse_zenodo_record_shapes():
    entry = {"key": "a.txt", "size": 3, "checksum": "md5:" + "ABC0" * 8, "links": {"self": "http://x/a"}}
    assert dl.parse_zenodo_record({"files": [entry]}, "http://z", "1") == [
        {"key": "a.txt", "size": 3, "md5": "abc0" * 8, "url": "http://x/a"}
    ]
    bare = {"key": "b c.txt", "size": 1, "checksum": "md5:" + "ff" * 16}
    parsed = dl.parse_zenodo_record({"files": {"enabled": True, "entries": {"b c.txt": bare}}}, "http://z", "9")
    assert parsed[0]["url"] == "http://z/api/records/9/files/b%20c.txt/content"
    with pytest.raises(dl.DownloadError, match="no files"):
        dl.parse_zenodo_record({"files": []}, "http://z", "1")
    with pytest.raises(dl.DownloadError, match="md5"):
        dl.parse_zenodo_record({"files": [{"key": "a", "checksum": "sha1:00"}]}, "http://z", "1")
    with pytest.raises(dl.DownloadError, match="not a plain file name"):
        dl.parse_zenodo_record({"files": [{"key": "../evil", "checksum": "md5:00"}]}, "http://z", "1")


def test_zenodo_download_verify_and_skip(server, tmp_path):
    lines = []
    paths = _get(server, ["complex"], tmp_path, log=lines.append)
    target = tmp_path / "zenodo4436477" / GLU
    assert paths == [target] and target.read_bytes() == server.files[f"/files/{GLU}"]
    assert not (tmp_path / "zenodo4436477" / URA).exists()  # only the key asked for
    assert lines == [f"complex: downloaded {target}"]
    server.log.clear()
    _get(server, ["complex"], tmp_path, log=lines.append)
    assert lines[-1] == f"complex: skipped {target}"
    assert server.gets(GLU) == []  # only the records API was asked


def test_resume_after_dropped_connection(server, tmp_path):
    server.drop_after[f"/files/{GLU}"] = 300_000
    _get(server, ["complex"], tmp_path)
    assert (tmp_path / "zenodo4436477" / GLU).read_bytes() == server.files[f"/files/{GLU}"]
    assert server.gets(GLU) == [None, "bytes=300000-"]


def test_resume_on_the_next_run(server, tmp_path):
    server.drop_after[f"/files/{GLU}"] = 123_456
    target = tmp_path / "zenodo4436477" / GLU
    with pytest.raises(dl.DownloadError, match="run again to resume"):
        _get(server, ["complex"], tmp_path, retries=0)
    assert not target.exists()
    assert (tmp_path / "zenodo4436477" / f"{GLU}.part").stat().st_size == 123_456
    assert main(["download", "complex", "--out", str(tmp_path), "--zenodo-url", server.url, "--quiet"]) == 0
    assert target.read_bytes() == server.files[f"/files/{GLU}"]
    assert server.gets(GLU)[-1] == "bytes=123456-"
    assert not (tmp_path / "zenodo4436477" / f"{GLU}.part").exists()


def test_server_ignoring_range_restarts(server, tmp_path):
    part = tmp_path / "zenodo4436477" / f"{GLU}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that a 200 answer must replace")
    server.ignore_range = True
    _get(server, ["complex"], tmp_path)
    assert (tmp_path / "zenodo4436477" / GLU).read_bytes() == server.files[f"/files/{GLU}"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.corrupt.add(f"/files/{URA}")
    with pytest.raises(dl.DownloadError, match="md5 mismatch .* partial download was deleted"):
        _get(server, ["defined"], tmp_path)
    assert list((tmp_path / "zenodo4436477").iterdir()) == []


def test_http_errors_and_unknown_keys(server, tmp_path):
    server.gone.add(f"/files/{URA}")
    with pytest.raises(dl.HTTPStatusError, match="HTTP 404"):
        _get(server, ["defined"], tmp_path)
    assert not (tmp_path / "zenodo4436477" / URA).exists()
    with pytest.raises(dl.DownloadError, match="has no file 'nope.txt'"):
        dl.zenodo_files("4436477", ["nope.txt"], tmp_path, server.url)
    with pytest.raises(dl.DownloadError, match="unknown download 'everything'"):
        _get(server, ["everything"], tmp_path)
    with pytest.raises(dl.DownloadError, match="cannot connect"):
        dl.download(["complex"], tmp_path, zenodo_url="http://127.0.0.1:9", progress=False)


def test_existing_file_that_differs(server, tmp_path):
    target = tmp_path / "zenodo4436477" / GLU
    target.parent.mkdir(parents=True)
    target.write_bytes(b"an older, different file")
    with pytest.raises(OutputExistsError, match="does not match the expected md5"):
        _get(server, ["complex"], tmp_path)
    assert target.read_bytes() == b"an older, different file"
    _get(server, ["complex"], tmp_path, overwrite=True)
    assert target.read_bytes() == server.files[f"/files/{GLU}"]


def test_base_url_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CRMNET_ZENODO_URL", server.url)
    dl.download(["defined"], tmp_path, progress=False)
    assert (tmp_path / "zenodo4436477" / URA).read_bytes() == server.files[f"/files/{URA}"]


def test_github_sources_match_the_shared_copies(server, tmp_path, shared):
    """The pinned paths, sizes and sha256 sums are the facts of the shared files; the layout mirrors them."""
    names = ["test-sets", "peer-predictions", "legnet"]
    assert all(len(f.commit) == 40 for s in dl.SOURCES.values() for f in s.github)  # full hashes only
    for name in names:
        for f in dl.SOURCES[name].github:
            server.files[f"/{f.repo}/{f.commit}/{f.path}"] = (shared / "data" / f.dest).read_bytes()
    paths = _get(server, names, tmp_path)
    # Every file of the folders these sources fill, so a shared file the catalogue misses is caught; other
    # folders of ../shared (DREAM, orthologs) belong to other sources.
    folders = {Path(f.dest).parent for name in names for f in dl.SOURCES[name].github}
    expected = sorted(p.relative_to(shared / "data") for folder in folders
                      for p in (shared / "data" / folder).iterdir() if p.is_file())
    assert sorted(p.relative_to(tmp_path) for p in paths) == expected
    for p in paths:
        assert p.read_bytes() == (shared / "data" / p.relative_to(tmp_path)).read_bytes()
    f = dl.SOURCES["test-sets"].github[0]
    assert dl.github_files([f], tmp_path, "https://raw.example")[0].url == (
        "https://raw.example/1edv/evolution/bf4a41983a82ac81b3ef60fa33fc0e253760c73d/manuscript_code/model/"
        "reproduce_test_data_performance/Native_complex.csv"
    )


def test_authors_models_call_the_import_hook(server, tmp_path, monkeypatch):
    server.files["/files/crmnet_model.zip"] = b"zip bytes"
    server.records["7375243"] = ["/files/crmnet_model.zip"]
    calls = []

    def import_downloaded(download_dir: Path, out_dir: Path, overwrite: bool) -> list[Path]:
        calls.append((download_dir, out_dir, overwrite))
        out_dir.mkdir(parents=True)
        (out_dir / "model.pt").write_bytes(b"ckpt")
        return [out_dir / "model.pt"]

    fake = types.ModuleType("crmnet.zoo.keras")
    fake.import_downloaded = import_downloaded
    monkeypatch.setitem(__import__("sys").modules, "crmnet.zoo.keras", fake)
    paths = _get(server, ["crmnet-authors"], tmp_path)
    assert calls == [(tmp_path / "zenodo7375243", tmp_path / "crmnet_authors", False)]
    assert paths == [tmp_path / "zenodo7375243" / "crmnet_model.zip", tmp_path / "crmnet_authors" / "model.pt"]

    monkeypatch.setitem(dl.SOURCES, "crmnet-authors",
                        dl.SOURCES["crmnet-authors"].__class__(description="x", zenodo_record="7375243",
                                                               hook="crmnet_no_such_module:f"))
    with pytest.raises(dl.DownloadError, match="crmnet_no_such_module is not available"):
        _get(server, ["crmnet-authors"], tmp_path)


# Released models: DeepATT's real file (its blob id is the catalogue's); the LegNet and transformer files are
# not here, so their fixtures are served under the catalogue's paths with their own blob ids patched in.
FIXTURE_MODELS = {
    "legnet-complex": "fixtures/legnet/model_300.pth",
    "legnet-defined": "fixtures/legnet/model_300.pth",
    "vaishnav-transformer-complex": "fixtures/vaishnav_transformer/fitness_function.h5",
    "vaishnav-transformer-defined": "fixtures/vaishnav_transformer/fitness_function.h5",
}
DEEPATT = "models/vaishnav2022/deepatt_complex/DeepAtt_model.h5"


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _serve_model(server, monkeypatch, shared, name: str) -> bytes:
    import dataclasses

    f = dl.SOURCES[name].github[0]
    data = (shared / (DEEPATT if name == "deepatt-complex" else FIXTURE_MODELS[name])).read_bytes()
    if name != "deepatt-complex":
        f = dataclasses.replace(f, digest=git_blob(data))
        monkeypatch.setitem(dl.SOURCES, name, dataclasses.replace(dl.SOURCES[name], github=(f,)))
    server.files[f"/{f.repo}/{f.commit}/{f.path}"] = data
    return data


@pytest.fixture
def fake_importer(monkeypatch):
    calls = []

    def import_model(source: Path, out: Path, *, overwrite=False, verify=True, name=None) -> Path:
        calls.append((source, out, overwrite, verify, name, source.read_bytes()))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"checkpoint of " + source.name.encode())
        return out

    module = types.ModuleType("crmnet.zoo.importer")
    module.import_model = import_model
    monkeypatch.setitem(__import__("sys").modules, "crmnet.zoo.importer", module)
    return calls


@pytest.mark.parametrize("name", ["deepatt-complex", *FIXTURE_MODELS])
def test_released_model_is_verified_by_blob_id_then_imported(server, tmp_path, shared, monkeypatch, fake_importer,
                                                             name):
    data = _serve_model(server, monkeypatch, shared, name)
    f = dl.SOURCES[name].github[0]
    assert f.algorithm == "git-blob" and len(f.commit) == 40
    paths = _get(server, [name], tmp_path)
    model_file, ckpt = tmp_path / f.dest, tmp_path / "checkpoints" / f"{name}.pt"
    assert paths == [model_file, ckpt] and model_file.read_bytes() == data
    assert fake_importer == [(model_file, ckpt, False, True, name, data)]
    assert ckpt.read_bytes() == b"checkpoint of " + model_file.name.encode()
    _get(server, [name], tmp_path)  # verified file and checkpoint present: nothing fetched or imported again
    assert len(fake_importer) == 1


def test_released_model_blob_id_mismatch_leaves_nothing(server, tmp_path, shared, monkeypatch, fake_importer, capsys):
    _serve_model(server, monkeypatch, shared, "deepatt-complex")
    f = dl.SOURCES["deepatt-complex"].github[0]
    server.corrupt.add(f"/{f.repo}/{f.commit}/{f.path}")
    rc = main(["download", "deepatt-complex", "--out", str(tmp_path), "--github-url", server.url, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert f"git-blob mismatch (expected {f.digest}, got " in err and "partial download was deleted" in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [] and fake_importer == []


def test_released_deepatt_imports_for_real(server, tmp_path, shared, monkeypatch):
    """The real importer on the real DeepATT HDF5 (HDF5 needs the keras extra's h5py)."""
    pytest.importorskip("h5py")
    from crmnet.models.checkpoint import load_checkpoint

    _serve_model(server, monkeypatch, shared, "deepatt-complex")
    paths = _get(server, ["deepatt-complex"], tmp_path)
    model = load_checkpoint(paths[-1])
    assert sum(p.numel() for p in model.parameters()) == 84_273


def test_download_list_names_the_released_models(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("deepatt-complex", "legnet-complex", "vaishnav-transformer-defined", "crmnet-authors", "test-sets"):
        assert f"\n{name} " in "\n" + out


def test_a_server_sending_more_than_the_expected_size_is_stopped_there(server, tmp_path):
    """Issue 24: the read stops one byte past the expected size (not after the whole body), nothing is kept."""
    listed = server.entry
    server.entry = lambda path: {**listed(path), "size": 1000}  # the records API promises 1,000 bytes; 1 MB comes
    with pytest.raises(dl.OversizeError, match="more than the expected 1,000 bytes"):
        _get(server, ["complex"], tmp_path)
    assert list((tmp_path / "zenodo4436477").iterdir()) == []
    assert len(server.gets(GLU)) == 1  # not retried
