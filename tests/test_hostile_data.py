"""Hostile inputs, full disks, kills and races (issue 13): nothing lost, nothing silent.

One parametrised table per command. Every case asserts exit status 2, a single line on stderr naming the
file[:line] or option and the problem, and that the file system is the same before and after: nothing
created, nothing removed, nothing changed. Out-of-space is tested for real on a small tmpfs when this
process may mount one (root), else with a file-size limit in a subprocess (EFBIG, the kernel's own
refusal). Working directory: the test's tmp_path, so messages name the relative paths given.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from crmnet.cli import main, user_error_message
from crmnet.data.readers import read_records
from crmnet.data.store import open_store, prepare
from crmnet.data.txtblocks import TxtBlocks
from crmnet.errors import CrmnetError, InputError, OutputExistsError
from crmnet.fsutil import MARKER, atomic_file, atomic_path, mark_output, sweep_orphans

ROOT = Path(__file__).resolve().parents[1]


def _rows(n: int, seed: int = 0, length: int = 60) -> str:
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    return "".join(f"{''.join(bases[rng.integers(0, 4, length)])}\t{rng.normal():.4f}\n" for _ in range(n))


FILES = {  # name -> bytes, written into every case's working directory
    "train.txt": _rows(50).encode(),
    "lonecr.txt": b"ACGTACGT\t1.0\rACGTAAAA\t2.0\rACGTCCCC\t3.0\r",
    "underscore.txt": b"ACGTACGT\t1.5\nACGTAAAA\t1_000\n",
    "nan.txt": b"ACGTACGT\t1.5\nACGTAAAA\tNaN\n",
    "huge.txt": b"ACGTACGT\t1.5\nACGTAAAA\t1e39\n",
    "random.bin": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "utf16.txt": "ACGT\t1.0\n".encode("utf-16"),
    "extra.tsv": b"sequence\tPredicted Expression\nACGTACGT\t0.5\nACGTAAAA\t0.7\textra\n",
    "measured.csv": b"sequence,Measured Expression\nACGTACGT,1.0\nACGTAAAA,2.0\n",
    "random.meme": np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` (hidden ones too) → a digest of its content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from crmnet.models import checkpoint as ckpt
    from crmnet.models import registry

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    ckpt.save_checkpoint(path, registry.build_model("crmnet-tiny"))
    return path


@pytest.fixture
def work(tmp_path, monkeypatch, checkpoint) -> Path:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "m.pt").write_bytes(checkpoint.read_bytes())
    (tmp_path / "indir").mkdir()
    (tmp_path / "indir" / "train.txt").write_bytes(FILES["train.txt"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("the user's own file\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(work: Path, capsys, argv: list[str], *expected: str) -> str:
    """Run ``crmnet argv``: exit 2, one line naming ``expected``, the file system unchanged."""
    before = snapshot(work)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.splitlines()
    # crmnet's own errors: "crmnet: error: ..."; an option refused by its type: "crmnet COMMAND: error: ..."
    assert len(lines) == 1 and lines[0].startswith("crmnet") and ": error: " in lines[0], err
    for words in expected:
        assert words in lines[0], lines[0]
    assert snapshot(work) == before
    return lines[0]


PREPARE = {
    "out holds the input": (["indir/train.txt", "--out", "indir", "--overwrite"], ["indir: holds the input"]),
    "out is the input": (["train.txt", "--out", "train.txt", "--overwrite"], ["train.txt: is an input"]),
    "out is a foreign directory": (["train.txt", "--out", "foreign", "--overwrite"],
                                   ["foreign: is a directory that crmnet did not write"]),
    "out exists": (["train.txt", "--out", "foreign"], ["foreign: already exists", "--overwrite"]),
    "lone CR line ends": (["lonecr.txt", "--out", "st"], ["lonecr.txt:1:", "lone-CR"]),
    "1_000 is not a number": (["underscore.txt", "--out", "st"], ["underscore.txt:2:", "'1_000' is not a number"]),
    "NaN target": (["nan.txt", "--out", "st"], ["nan.txt:2:", "NaN"]),
    "float32 overflow": (["huge.txt", "--out", "st"], ["huge.txt:2:", "too large for the store's float32"]),
    "random bytes": (["random.bin", "--out", "st"], ["random.bin:1:", "binary data"]),
    "UTF-16 text": (["utf16.txt", "--out", "st"], ["utf16.txt:1:", "UTF-16"]),
    "a directory": (["indir", "--out", "st"], ["indir: is a directory"]),
    "missing input": (["nosuch.txt", "--out", "st"], ["nosuch.txt: no such file"]),
    "standard input": (["-", "--out", "st"], ["<stdin>: not a regular file"]),
    "bad option value": (["train.txt", "--out", "st", "--val-fraction", "1.5"], ["val_fraction"]),
    "absurd --length": (["train.txt", "--out", "st", "--length", "100000000000"], ["--length: must be between 1 and 65,535"]),
}


@pytest.mark.parametrize("case", PREPARE)
def test_prepare_refuses(work, capsys, case):
    argv, expected = PREPARE[case]
    refused(work, capsys, ["prepare", *argv, "--quiet"], *expected)


PREDICT = {
    "out is an existing directory": (["train.txt", "--out", "foreign", "--overwrite"], ["foreign: is a directory"]),
    "out is the input": (["train.txt", "--out", "train.txt", "--overwrite"], ["train.txt: is an input"]),
    "out exists": (["train.txt", "--out", "measured.csv"], ["measured.csv: already exists"]),
    "out is the checkpoint": (["train.txt", "--out", "m.pt", "--overwrite"], ["m.pt: is an input"]),
    "random bytes": (["random.bin", "--out", "p.tsv"], ["random.bin:1:", "binary data"]),
    "lone CR line ends": (["lonecr.txt", "--out", "p.tsv"], ["lonecr.txt:1:", "lone-CR (old Mac) line ends"]),
    "a directory": (["indir", "--out", "p.tsv"], ["indir: is a directory, not a file"]),
    "missing input": (["nosuch.fa", "--out", "p.tsv"], ["nosuch.fa: no such file"]),
    "UTF-16 text": (["utf16.txt", "--out", "p.tsv"], ["utf16.txt:1:", "UTF-16"]),
    "bad batch size": (["train.txt", "--out", "p.tsv", "--batch-size", "0"], ["--batch-size"]),
}


@pytest.mark.parametrize("case", PREDICT)
def test_predict_refuses(work, capsys, case):
    argv, expected = PREDICT[case]
    refused(work, capsys, ["predict", *argv, "--checkpoint", "m.pt", "--no-progress"], *expected)


EVALUATE = {
    "prediction row with an extra field": (["--predictions", "extra.tsv"], ["extra.tsv:3:", "found 3"]),
    "1_000 in a test file": (["--predictions", "extra.tsv", "--test", "underscore.txt"],
                             ["underscore.txt:2:", "'1_000' is not a number"]),
    "random bytes as predictions": (["--predictions", "random.bin"], ["random.bin:1:", "binary data"]),
    "out is a foreign directory": (["--predictions", "extra.tsv", "--out", "foreign", "--overwrite"],
                                   ["foreign: is a directory that crmnet did not write"]),
}


@pytest.mark.parametrize("case", EVALUATE)
def test_evaluate_refuses(work, capsys, case):
    argv, expected = EVALUATE[case]
    if "--out" not in argv:
        argv = [*argv, "--out", "ev"]
    if case == "out is a foreign directory":  # a valid scoring, so only the output is refused
        (work / "pred.txt").write_text("ACGTACGT\t0.5\nACGTAAAA\t0.7\nACGTCCCC\t0.1\n")
        (work / "test.csv").write_text("sequence,Measured Expression\nACGTACGT,1.0\nACGTAAAA,2.0\nACGTCCCC,0.5\n")
        argv = ["--predictions", "pred.txt", "--test", "test.csv", *argv[2:]]
    refused(work, capsys, ["evaluate", *argv, "--bootstrap", "0"], *expected)


def test_report_and_evaluate_never_replace_their_inputs(work, capsys):
    mark_output(work / "indir")  # a crmnet output directory, used as the input of the next command
    refused(work, capsys, ["report", "indir", "--out", "indir", "--overwrite"], "indir: is an input")
    refused(work, capsys, ["evaluate", "--checkpoint", "indir/m.pt", "--out", "indir", "--overwrite"],
            "indir: holds the input")


def test_predict_refuses_a_checkpoint_with_nan_weights(work, capsys):
    import torch

    from crmnet.models import checkpoint as ckpt

    model = ckpt.load_checkpoint(work / "m.pt")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    ckpt.save_checkpoint(work / "nan.pt", model)
    refused(work, capsys, ["predict", "train.txt", "--checkpoint", "nan.pt", "--out", "p.tsv", "--no-progress"],
            "nan.pt", "NaN or infinite")


def test_interpret_refuses_a_random_meme_file(work, capsys):
    refused(work, capsys, ["interpret", "--checkpoint", "m.pt", "--sequences", "train.txt", "--out", "io",
                           "--meme", "random.meme"], "random.meme:1:", "not a text file")


class _Answer(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.mark.parametrize("body", [b"[]", b'{"files": ["a"]}', b'{"files": [{"key": 3, "checksum": "md5:00"}]}',
                                  b'{"files": [{"key": "a", "checksum": "md5:' + b"0" * 32 + b'", "size": "big"}]}',
                                  b"<html>Service unavailable</html>"])
def test_download_refuses_a_malformed_records_answer(work, capsys, body):
    handler = type("Answer", (_Answer,), {"body": body})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        refused(work, capsys, ["download", "complex", "--out", "data", "--zenodo-url", url, "--quiet"], "Zenodo record"
                if body.startswith((b"[", b"{")) else "did not answer JSON")
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- what is accepted, and how ------------------------------------------------------------------------


def test_predict_reads_standard_input_and_pipes(work, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(FILES["train.txt"])))
    assert main(["predict", "-", "--checkpoint", "m.pt", "--out", "stdin.tsv", "--no-progress"]) == 0
    assert main(["predict", "train.txt", "--checkpoint", "m.pt", "--out", "file.tsv", "--no-progress"]) == 0
    assert (work / "stdin.tsv").read_text() == (work / "file.tsv").read_text()
    read_fd, write_fd = os.pipe()  # what <(...) gives: /dev/fd/N, a pipe read once
    writer = threading.Thread(target=lambda: (os.write(write_fd, FILES["train.txt"]), os.close(write_fd)))
    writer.start()
    try:
        assert main(["predict", f"/dev/fd/{read_fd}", "--checkpoint", "m.pt", "--out", "pipe.tsv",
                     "--no-progress"]) == 0
    finally:
        writer.join()
        os.close(read_fd)
    assert (work / "pipe.tsv").read_text() == (work / "file.tsv").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("invalid", ["error", "N"])
def test_bom_is_dropped_by_the_fast_and_the_exact_reader_alike(tmp_path, invalid):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfACGTACGT\t1.0\nACGTAAAA\t2.0\n")
    exact = read_records(path, "txt", invalid=invalid)
    assert exact.sequences == ["ACGTACGT", "ACGTAAAA"] and exact.mapped == 0
    blocks = TxtBlocks(path, invalid=invalid)
    fast = list(blocks)
    assert blocks.mapped == 0 and fast[0].lengths.tolist() == [8, 8]
    store = prepare([path], tmp_path / "st", val_fraction=0.0, invalid=invalid)
    assert store.sequences(np.arange(2)) == ["ACGTACGT", "ACGTAAAA"]
    assert store.manifest["invalid"]["characters_mapped_to_N"] == 0
    fasta = tmp_path / "bom.fa"
    fasta.write_bytes(b"\xef\xbb\xbf>s1 first\nACGT\n")
    assert read_records(fasta).ids == ["s1"]
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfsequence,Measured Expression\nACGT,1.0\n")
    assert read_records(csv).sequence_column == "sequence"


def test_binary_bytes_are_refused_under_either_invalid_policy(tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(b"ACGTACGT\t1.0\nACG\x00AAAA\t2.0\n")
    for invalid in ("error", "N"):  # the fast path may call it an invalid character: an error all the same
        with pytest.raises(InputError, match=r"binary data|invalid character '\\x00'") as err:
            list(TxtBlocks(path, invalid=invalid))
        assert err.value.line == 2
        with pytest.raises(InputError, match="binary data") as err:
            read_records(path, "txt", invalid=invalid)
        assert err.value.line == 2


def test_store_with_non_finite_targets_is_refused_when_opened(tmp_path):
    (tmp_path / "t.txt").write_bytes(FILES["train.txt"])
    store = prepare([tmp_path / "t.txt"], tmp_path / "st")
    targets = np.load(store.path / "targets.npy", mmap_mode="r+")
    targets[7] = np.nan
    targets.flush()
    del targets, store
    with pytest.raises(InputError, match="targets.npy: target of row 7 is nan"):
        open_store(tmp_path / "st")


# --- out of space --------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only); skipped where it cannot be mounted (the subprocess test covers that)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           check=False, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("command", ["prepare", "predict"])
def test_out_of_space_on_a_real_small_disk(work, capsys, small_disk, command):
    (work / "big.txt").write_text(_rows(3000, seed=3, length=80))
    argv = (["prepare", "big.txt", "--out", str(small_disk / "st"), "--quiet"] if command == "prepare" else
            ["predict", "big.txt", "--checkpoint", "m.pt", "--out", str(small_disk / "p.tsv"), "--no-progress"])
    line = refused(work, capsys, argv, "No space left on device", "nothing was written")
    assert line.startswith(f"crmnet: error: {small_disk}/")
    assert list(small_disk.iterdir()) == []


def test_out_of_space_without_root(work):
    """A file-size limit: the kernel refuses writes past 64 KiB (EFBIG), as a full disk would (ENOSPC)."""
    (work / "big.txt").write_text(_rows(3000, seed=3, length=80))
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY)); "
            "from crmnet.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    before = snapshot(work)
    done = subprocess.run([sys.executable, "-c", code, "prepare", "big.txt", "--out", "st", "--quiet"], cwd=work,
                          env=env, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["crmnet: error: st: cannot write (File too large); nothing was written"]
    assert snapshot(work) == before


# --- races and kills -----------------------------------------------------------------------------------


def test_concurrent_prepares_to_one_output_one_wins(tmp_path):
    (tmp_path / "a.txt").write_text(_rows(400, seed=4))
    (tmp_path / "b.txt").write_text(_rows(400, seed=5))
    results: dict[str, object] = {}

    def run(name):
        try:
            results[name] = prepare([tmp_path / f"{name}.txt"], tmp_path / "st").manifest["sources"][0]["path"]
        except OutputExistsError as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if isinstance(r, str)]
    assert len(winners) == 1, results
    loser = next(r for r in results.values() if not isinstance(r, str))
    assert "already exists" in str(loser)
    manifest = json.loads((tmp_path / "st" / "manifest.json").read_text())
    assert manifest["sources"][0]["path"] == str((tmp_path / f"{winners[0]}.txt").resolve())  # intact, not mixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "st"]


def test_target_appearing_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "out.tsv"
    with pytest.raises(OutputExistsError, match="appeared while this command ran"), atomic_file(out) as fh:
        fh.write("mine\n")
        out.write_text("theirs\n")
    assert out.read_text() == "theirs\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]
    with pytest.raises(OutputExistsError), atomic_path(tmp_path / "d") as tmp:
        tmp.mkdir()
        (tmp_path / "d").mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "out.tsv"]


def test_overwrite_replaces_crmnet_outputs_only(tmp_path):
    with atomic_path(tmp_path / "d") as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    assert (tmp_path / "d" / MARKER).is_file()
    with atomic_path(tmp_path / "d", overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [MARKER, "b"]
    (tmp_path / "mine").mkdir()
    with pytest.raises(CrmnetError, match="did not write"), atomic_path(tmp_path / "mine", overwrite=True) as tmp:
        tmp.mkdir()
    (tmp_path / "f.tsv").write_text("old")
    with atomic_file(tmp_path / "f.tsv", overwrite=True) as fh:  # a file named on purpose is replaced
        fh.write("new")
    assert (tmp_path / "f.tsv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.tsv", "mine"]


def test_killed_run_leaves_a_temporary_that_the_next_run_sweeps(tmp_path):
    out = tmp_path / "out.tsv"
    code = ("import sys, time; from crmnet.fsutil import atomic_file\n"
            "with atomic_file(sys.argv[1]) as fh:\n    fh.write('x' * 1000); fh.flush(); print('ready', flush=True)"
            "; time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        left = sorted(p.name for p in tmp_path.iterdir())
        assert len(left) == 2 and left[0].endswith(".lock") and left[1].endswith(".tmp")
        assert sweep_orphans(out) == []  # still being written: kept
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert len(list(tmp_path.iterdir())) == 2  # SIGKILL: no clean-up
    with atomic_file(out) as fh:  # the next write of the same output sweeps them
        fh.write("done\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv"]


# --- the CLI boundary ----------------------------------------------------------------------------------


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), "cannot write: No space left on device"),
    (OSError(errno.EACCES, "Permission denied", "/x/y"), "/x/y: Permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "d"), "d: Is a directory"),
    (MemoryError("Unable to allocate 93.1 TiB"), "out of memory (Unable to allocate 93.1 TiB)"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "cannot read text as utf-8 (byte 0xff"),
    (CrmnetError("a\nb"), "a b"),
])
def test_user_failures_become_one_line(exc, expected):
    message = user_error_message(exc)
    assert message is not None and expected in message and "\n" not in message


@pytest.mark.parametrize("exc", [OSError(errno.EBADF, "Bad file descriptor"), TypeError("bug"), KeyError("bug"),
                                 OSError(errno.EACCES, "Permission denied")])
def test_programming_errors_keep_their_traceback(exc, monkeypatch):
    assert user_error_message(exc) is None

    def boom(args):
        raise exc

    import crmnet.cli.prepare as cli_prepare

    monkeypatch.setattr(cli_prepare, "run", boom)
    with pytest.raises(type(exc)):
        main(["prepare", "x", "--out", "y"])


def test_memory_error_in_a_command_is_one_line(monkeypatch, capsys):
    import crmnet.cli.prepare as cli_prepare

    def boom(args):
        np.empty((1 << 62,), dtype=np.uint8)

    monkeypatch.setattr(cli_prepare, "run", boom)
    assert main(["prepare", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "out of memory" in err


def test_ctrl_c_while_the_subcommands_import_is_an_interrupt(monkeypatch, capsys):
    from crmnet import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["prepare", "x", "--out", "y"]) == 130
    assert capsys.readouterr().err == "crmnet: interrupted\n"


def test_sweep_leaves_other_outputs_temporaries_alone(tmp_path):
    (tmp_path / ".out.tsv.abcd1234.lock").write_text("")  # free lock of another output, "out.tsv"
    (tmp_path / ".out.tsv.abcd1234.old").write_text("the only copy of out.tsv")
    assert sweep_orphans(tmp_path / "out") == []
    assert (tmp_path / ".out.tsv.abcd1234.old").exists()
