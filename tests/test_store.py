"""prepare → store: contents match the inputs, manifest, split, media, duplicates, atomicity, errors."""

import gzip
import hashlib
import json
import os

import numpy as np
import pytest

from crmnet.cli import main
from crmnet.data.encoding import VAISHNAV, Encoding, encode
from crmnet.data.readers import read_records
from crmnet.data.store import open_store, prepare
from crmnet.errors import CrmnetError, InputError, OutputExistsError

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def training_text(rng, n: int, lengths=(78, 83)) -> tuple[list[str], np.ndarray, str]:
    """n random promoters with the real flanks (80 ± 2-nt variable region) and values, as txt."""
    seqs = [LEFT + "".join(rng.choice(list("ACGT"), size=k)) + RIGHT for k in rng.integers(*lengths, size=n)]
    values = rng.normal(10, 3, size=n).round(6)
    return seqs, values, "".join(f"{s}\t{v!r}\n" for s, v in zip(seqs, values.tolist()))


@pytest.fixture
def small(tmp_path, rng):
    seqs, values, text = training_text(rng, 3000)
    path = tmp_path / "train.txt"
    path.write_text(text)
    return path, seqs, values


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("rel", ["test/Native_complex.csv", "test/Random_complex_raw.csv", "test/Random_defined.csv",
                                 "test/HQ_testdata_complex.txt", "test/Native_defined.csv", "test/Random_complex.csv"])
def test_shared_test_files_prepare_and_decode(vaishnav_dir, tmp_path, rel):
    table = read_records(vaishnav_dir / rel)
    store = prepare([vaishnav_dir / rel], tmp_path / "store")
    n = len(table)
    assert len(store) == n and store.manifest["n_val"] == round(n * 0.01)
    assert store.sequences(np.arange(n)) == [s[:112].upper() for s in table.sequences]
    np.testing.assert_array_equal(store.targets, table.measured.astype(np.float32))
    np.testing.assert_array_equal(store.codes, encode(table.sequences)[0])
    np.testing.assert_array_equal(store.lengths, [len(s) for s in table.sequences])
    assert store.manifest["truncated_rows"] == sum(len(s) > 112 for s in table.sequences)
    source = store.manifest["sources"][0]
    assert source["sha256"] == hashlib.sha256((vaishnav_dir / rel).read_bytes()).hexdigest()
    assert source["rows"] == n and source["format"] == ("txt" if rel.endswith(".txt") else "csv")


def test_manifest_split_and_size(small, tmp_path):
    path, seqs, values = small
    store = prepare([path], tmp_path / "store", val_fraction=0.1, seed=3)
    m = store.manifest
    assert (m["format"], m["format_version"], m["n_rows"], m["n_train"], m["n_val"]) == ("crmnet.data.store", 1, 3000,
                                                                                           2700, 300)
    assert Encoding.from_dict(m["encoding"]) == Encoding() and m["split"]["seed"] == 3
    assert int(store.split.sum()) == 300 and len(store.indices("train")) == 2700
    assert m["sources"][0]["bytes"] == path.stat().st_size and m["created"].endswith("+00:00")
    np.testing.assert_array_equal(store.targets, values.astype(np.float32))
    assert store.sequences(np.arange(3000)) == seqs
    on_disk = sum(f.stat().st_size for f in store.path.iterdir() if f.suffix == ".npy")
    assert on_disk / 3000 <= 120
    assert listing(store.path) == [".crmnet-output", "codes.npy", "lengths.npy", "manifest.json", "medium.npy", "split.npy",
                                   "targets.npy"]
    for name in ("codes", "lengths", "targets", "medium", "split"):  # plain .npy files, readable without crmnet
        assert np.load(store.path / f"{name}.npy").shape[0] == 3000
    same = prepare([path], tmp_path / "again", val_fraction=0.1, seed=3)
    other = prepare([path], tmp_path / "other", val_fraction=0.1, seed=4)
    assert np.array_equal(same.split, store.split) and not np.array_equal(other.split, store.split)


def test_vaishnav_layout_and_gzip_input(small, tmp_path):
    path, seqs, _ = small
    gz = tmp_path / "train.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    store = prepare([gz], tmp_path / "store", encoding=VAISHNAV, chunk_bytes=64 << 10)
    np.testing.assert_array_equal(store.codes, encode(seqs, VAISHNAV)[0])
    assert store.encoding == VAISHNAV and store.manifest["sources"][0]["sha256"] == hashlib.sha256(
        gz.read_bytes()).hexdigest()


def test_long_sequences_use_uint16_lengths(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("A" * 300 + "\t1\nC" + "G" * 10 + "\t2\n")
    store = prepare([path], tmp_path / "store", val_fraction=0)
    assert store.lengths.dtype == np.uint16 and store.lengths.tolist() == [300, 11]
    assert store.manifest["truncated_rows"] == 1 and store.sequences([0]) == ["A" * 112]


def test_media_mixing_and_balance(tmp_path, rng):
    paths = []
    for name, n in (("complex", 1200), ("defined", 800)):
        paths.append(tmp_path / f"{name}.txt")
        paths[-1].write_text(training_text(rng, n)[2])
    store = prepare(paths, tmp_path / "mixed", media=["complex", "defined"])
    assert store.media == ["complex", "defined"] and store.manifest["media_rows"] == [1200, 800]
    assert store.medium[:1200].max() == 0 and store.medium[1200:].min() == 1
    val = store.indices("val")
    assert len(val) == 20 and 0 < (store.medium[val] == 1).sum() < 20  # a global split samples both media
    bal = prepare(paths, tmp_path / "balanced", media=["complex", "defined"], balance=True, seed=1)
    assert bal.manifest["media_rows"] == [800, 800] and bal.manifest["balance"]["rows_removed"] == 400
    complex_rows = set(store.sequences(np.arange(1200)))
    assert set(bal.sequences(np.flatnonzero(bal.medium == 0))) <= complex_rows
    assert bal.sequences(np.flatnonzero(bal.medium == 1)) == store.sequences(np.arange(1200, 2000))
    again = prepare(paths, tmp_path / "balanced2", media=["complex", "defined"], balance=True, seed=1)
    np.testing.assert_array_equal(again.codes, bal.codes)
    with pytest.raises(ValueError, match="one medium per input"):
        prepare(paths, tmp_path / "x", media=["a", "b", "c"])


@pytest.fixture
def with_duplicates(tmp_path):
    path = tmp_path / "dup.txt"
    # line 3 repeats line 1 (lower case: same codes); line 4 repeats line 2; line 6 differs from line 5 only
    # past the 112 stored bases, so the store (and any model) cannot tell them apart: a duplicate too
    long_a, long_b = "A" * 112 + "C", "A" * 112 + "G"
    path.write_text(f"ACGT\t1\nGGGG\t5\nacgt\t3\nGGGG\t6\n{long_a}\t7\n{long_b}\t8\nTTTT\t9\n")
    return path


def test_duplicate_policies(with_duplicates, tmp_path):
    keep = prepare([with_duplicates], tmp_path / "keep", val_fraction=0)
    assert len(keep) == 7 and keep.manifest["duplicates"]["duplicate_rows"] == 3
    first = prepare([with_duplicates], tmp_path / "first", duplicates="first", val_fraction=0)
    assert first.sequences(np.arange(len(first))) == ["ACGT", "GGGG", "A" * 112, "TTTT"]
    assert first.targets.tolist() == [1, 5, 7, 9] and first.manifest["sources"][0]["rows_kept"] == 4
    mean = prepare([with_duplicates], tmp_path / "mean", duplicates="mean", val_fraction=0)
    assert mean.targets.tolist() == [2, 5.5, 7.5, 9]
    with pytest.raises(InputError) as err:
        prepare([with_duplicates], tmp_path / "error", duplicates="error")
    assert err.value.line == 3 and f"same as {with_duplicates}:1" in str(err.value)
    assert not (tmp_path / "error").exists()


def test_duplicates_across_media_are_not_duplicates(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("ACGT\t1\n")
    b.write_text("ACGT\t2\n")
    store = prepare([a, b], tmp_path / "s", media=["x", "y"], duplicates="error", val_fraction=0)
    assert len(store) == 2


def test_error_mid_stream_leaves_nothing(small, tmp_path):
    path = small[0]
    lines = path.read_text().splitlines()
    lines[2500] = lines[2500][:30] + "X" + lines[2500][31:]
    path.write_text("\n".join(lines) + "\n")
    before = listing(tmp_path)
    with pytest.raises(InputError) as err:
        prepare([path], tmp_path / "store", chunk_bytes=32 << 10)
    assert err.value.line == 2501 and "'X'" in str(err.value)
    assert listing(tmp_path) == before  # no store, no temporary directory


def test_existing_and_unwritable_output(small, tmp_path):
    path = small[0]
    prepare([path], tmp_path / "store")
    with pytest.raises(OutputExistsError):
        prepare([path], tmp_path / "store")
    store = prepare([path], tmp_path / "store", overwrite=True, seed=9)
    assert store.manifest["split"]["seed"] == 9
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CrmnetError, match="cannot create the output directory"):
        prepare([path], blocker / "store")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(CrmnetError, match="not writable"):
            prepare([path], locked / "store")


def test_open_store_rejects_foreign_or_incomplete(small, tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        open_store(tmp_path / "missing")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(InputError, match="manifest.json is missing"):
        open_store(tmp_path / "foreign")
    (tmp_path / "foreign" / "manifest.json").write_text('{"format": "something"}')
    with pytest.raises(InputError, match="not a crmnet store"):
        open_store(tmp_path / "foreign")
    store = prepare([small[0]], tmp_path / "store")
    (store.path / "split.npy").unlink()
    with pytest.raises(InputError, match="split.npy is missing"):
        open_store(store.path)
    manifest = json.loads((store.path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="version 99"):
        open_store(store.path)


def test_cli_prepare(small, tmp_path, capsys):
    path = small[0]
    out = tmp_path / "store"
    assert main(["prepare", str(path), "--out", str(out), "--quiet", "--length", "110", "--pad", "start",
                 "--truncate", "start", "--val-fraction", "0.02"]) == 0
    assert "3,000 rows (2,940 train, 60 validation" in capsys.readouterr().out
    assert open_store(out).encoding == Encoding(length=110, pad="start", truncate="start")
    assert main(["prepare", str(path), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\t1\nACGT\tn/a\n")
    assert main(["prepare", str(bad), "--out", str(tmp_path / "s2"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"crmnet: error: {bad}:2: value 'n/a' is not a number"
    assert main(["prepare", str(path), "--out", str(tmp_path / "s3"), "--quiet", "--val-fraction", "1.5"]) == 2
    assert "val_fraction" in capsys.readouterr().err


@pytest.mark.parametrize("block_rows", [1, 7, 1 << 20])
@pytest.mark.parametrize("collide", [False, True])
def test_duplicate_detection_is_exact_in_any_block_size(tmp_path, rng, block_rows, collide):
    from crmnet.data.store import _duplicate_groups, _fingerprints

    pool, _ = encode(["".join(rng.choice(list("ACGT"), size=20)) for _ in range(40)], Encoding(length=24))
    pick = rng.integers(0, 40, size=300)
    codes, lengths, medium = pool[pick], np.full(300, 20), rng.integers(0, 2, size=300).astype(np.uint8)
    hashes = np.zeros(300, np.uint64)  # all equal when ``collide``: only the exact check can tell rows apart
    if not collide:
        for m in (0, 1):
            hashes[medium == m] = _fingerprints(codes[medium == m], lengths[medium == m], m)
    np.save(tmp_path / "h.npy", hashes)
    np.save(tmp_path / "c.npy", codes)
    dup, first = _duplicate_groups(tmp_path / "h.npy", tmp_path / "c.npy", lengths, medium, block_rows)
    seen, want_dup, want_first = {}, [], []
    for row, key in enumerate(zip(pick.tolist(), medium.tolist())):
        if key in seen:
            want_dup.append(row)
            want_first.append(seen[key])
        else:
            seen[key] = row
    assert dup.tolist() == want_dup and first.tolist() == want_first


def test_published_predictions_are_refused_as_training_targets(tmp_path, shared, capsys):
    legnet = shared / "data" / "legnet2023" / "complex_Native.txt"
    assert main(["prepare", str(legnet), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "published predictions (legnet2023/complex_Native.txt @ 63773bb)" in err and "--role predicted" in err
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []
    assert main(["prepare", str(legnet), "--out", str(tmp_path / "s"), "--quiet", "--role", "predicted"]) == 0
    assert "predictions" in json.loads((tmp_path / "s" / "manifest.json").read_text())["target"]
