"""``crmnet download dream2022`` / ``legnet-dream2022`` against a local server on 127.0.0.1, then the final split.

The pinned blob ids are checked against the shared copies; the two files the shared copy lacks (the labelled
test set, the SNV subset) are synthesised consistently with the real subsets and served under the catalogue's
paths with their own blob ids patched in, as tests/test_download.py does for the model fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from crmnet.cli import main
from crmnet.data import download as dl
from crmnet.data import dream2022 as dd
from crmnet.data.catalogue import DREAM_FILES, DREAM_TRAIN_KEY, DREAM_ZENODO
from crmnet.fsutil import file_digest
from test_download import FakeServer, git_blob

MISSING = ("dream2022/filtered_test_data_with_MAUDE_expression.txt", "dream2022/test_subset_ids/all_SNVs_seqs.csv")


@pytest.fixture
def server():
    s = FakeServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_pins_are_the_shared_copies_blob_ids(shared):
    present = [f for f in DREAM_FILES if f.dest not in MISSING]
    assert len(present) == len(DREAM_FILES) - 2 and all(len(f.commit) == 40 for f in DREAM_FILES)
    for f in present:
        path = shared / "data" / f.dest
        assert file_digest(path, "git-blob") == f.digest and path.stat().st_size == f.size, f.dest


def _synthetic_missing(shared: Path, rng) -> dict[str, bytes]:
    """A labelled test file holding the real subsets' sequences, and an SNV subset of pairs from it."""
    data = dd.load(shared / "data")
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    seqs = [s or "TGCATTTTTTTCACATC" + letters[rng.integers(0, 4, 80)].tobytes().decode() + "GGTTACGGCTGTT"
            for s in data.sequences]
    measured = np.where(np.isfinite(data.measured), data.measured, rng.normal(size=dd.N_TEST))
    test = "".join(f"{s}\t{float(v)!r}\n" for s, v in zip(seqs, measured))
    pairs = data.public["SNVs"][:200].tolist() + rng.choice(np.flatnonzero([s is None for s in data.sequences]),
                                                           (300, 2), replace=False).tolist()
    snv = ",alt_pos,ref_pos,alt_sequence,ref_sequence,alt_exp,ref_exp\n" + "".join(
        f"{i},{a},{b},{seqs[a]},{seqs[b]},,\n" for i, (a, b) in enumerate(pairs))
    return {MISSING[0]: test.encode(), MISSING[1]: snv.encode()}


@pytest.mark.slow  # 71,103-line files written, served, verified, read and scored: ~14 s on a shared 2-core CPU
def test_download_dream2022_then_score_the_final_split(server, tmp_path, shared, monkeypatch, capsys):
    synthetic = _synthetic_missing(shared, np.random.default_rng(3))
    files = []
    for f in DREAM_FILES:
        body = synthetic.get(f.dest) or (shared / "data" / f.dest).read_bytes()
        if f.dest in synthetic:
            f = dataclasses.replace(f, digest=git_blob(body))
        server.files[f"/{f.repo}/{f.commit}/{f.path}"] = body
        files.append(f)
    train = (shared / "data/dream2022/demo_train.txt").read_bytes()
    server.files[f"/files/{DREAM_TRAIN_KEY}"] = train
    server.records[DREAM_ZENODO] = [f"/files/{DREAM_TRAIN_KEY}"]
    monkeypatch.setitem(dl.SOURCES, "dream2022", dataclasses.replace(dl.SOURCES["dream2022"], github=tuple(files)))
    out = tmp_path / "data"
    assert main(["download", "dream2022", "--out", str(out), "--github-url", server.url, "--zenodo-url", server.url,
                 "--quiet"]) == 0
    assert (out / f"zenodo{DREAM_ZENODO}" / DREAM_TRAIN_KEY).read_bytes() == train
    for f in DREAM_FILES:
        assert (out / f.dest).is_file(), f.dest
    data = dd.load(out)
    assert data.full and set(data.subsets) == set(dd.SUBSET_FILES)
    # a final-split submission in the challenge's text format: sequence<TAB>prediction in index order
    rng = np.random.default_rng(4)
    sub = tmp_path / "results.txt"
    pred = data.measured + rng.normal(scale=0.5, size=dd.N_TEST)
    sub.write_text("".join(f"{s}\t{p!r}\n" for s, p in zip(data.sequences, pred.tolist())))
    capsys.readouterr()
    assert main(["benchmark", "dream2022", "--split", "final", "--data-dir", str(out), "--predictions", str(sub),
                 "--out", str(tmp_path / "B")]) == 0
    scores = json.loads((tmp_path / "B" / "scores.json").read_text())
    assert scores["missing_subsets"] == [] and not scores["partial"] and scores["weights_present"] == 4.65
    assert scores["subsets"]["SNVs"]["n"] == 300  # the 200 public pairs are excluded
    assert scores["subsets"]["all"]["n"] == dd.N_TEST - 9045


def test_legnet_dream2022_downloads_and_imports(server, tmp_path, monkeypatch):
    from crmnet.models.checkpoint import load_checkpoint

    data = lzma.decompress((Path(__file__).parent / "fixtures/legnet_dream2022/model_80.pth.xz").read_bytes())
    f = dataclasses.replace(dl.SOURCES["legnet-dream2022"].github[0], digest=git_blob(data))
    monkeypatch.setitem(dl.SOURCES, "legnet-dream2022", dataclasses.replace(dl.SOURCES["legnet-dream2022"],
                                                                             github=(f,)))
    server.files[f"/{f.repo}/{f.commit}/{f.path}"] = data
    paths = dl.download(["legnet-dream2022"], tmp_path, github_url=server.url, progress=False)
    assert paths == [tmp_path / f.dest, tmp_path / "checkpoints" / "legnet-dream2022.pt"]
    model = load_checkpoint(paths[-1])
    assert sum(p.numel() for p in model.parameters()) == 1_852_846
