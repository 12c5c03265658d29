"""BatchLoader: coverage per epoch, seeded reshuffles, DDP shards, exact resume, on-device layouts."""

import numpy as np
import pytest
import torch

from crmnet.data.encoding import VAISHNAV, Encoding, encode, onehot
from crmnet.data.loader import BatchLoader
from crmnet.data.store import prepare

N_ROWS = 2500


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), size=k)) for k in rng.integers(100, 118, size=N_ROWS)]
    values = rng.normal(size=N_ROWS).round(5)
    path = tmp_path_factory.mktemp("loader") / "train.txt"
    path.write_text("".join(f"{s}\t{v!r}\n" for s, v in zip(seqs, values.tolist())))
    st = prepare([path], path.parent / "store", val_fraction=0.1)
    st.test_sequences = seqs  # the raw inputs, for checks against direct encoding
    return st


def rows_of(loader) -> list[np.ndarray]:
    return [b.index for b in loader.iter_codes()]


def test_every_row_once_per_epoch_and_batches_match_store(store):
    loader = BatchLoader(store, "train", batch_size=256, seed=5)
    assert len(loader) == -(-2250 // 256)
    seen = []
    for batch in loader.iter_codes():
        seen.append(batch.index)
        np.testing.assert_array_equal(batch.codes, store.codes[batch.index])
        np.testing.assert_array_equal(batch.targets, store.targets[batch.index])
        np.testing.assert_array_equal(batch.lengths, store.lengths[batch.index])
    seen = np.concatenate(seen)
    assert len(seen) == 2250 and np.array_equal(np.sort(seen), store.indices("train"))
    val = np.concatenate(rows_of(BatchLoader(store, "val", batch_size=64, shuffle=False)))
    np.testing.assert_array_equal(val, store.indices("val"))  # unshuffled: store order


def test_reshuffle_by_epoch_reproducible_by_seed(store):
    a = BatchLoader(store, batch_size=500, seed=1)
    e0, e1 = np.concatenate(rows_of(a)), np.concatenate(rows_of(a))  # iterating to the end moves to epoch 1
    assert a.epoch == 2 and not np.array_equal(e0, e1) and np.array_equal(np.sort(e0), np.sort(e1))
    b = BatchLoader(store, batch_size=500, seed=1)
    b.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate(rows_of(b)), e1)
    c = BatchLoader(store, batch_size=500, seed=2)
    assert not np.array_equal(np.concatenate(rows_of(c)), e0)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_shards_disjoint_and_equal(store, drop_last):
    world = 4  # 2250 train rows: 2 left over
    shards = [BatchLoader(store, batch_size=100, seed=3, rank=r, world_size=world, drop_last=drop_last)
              for r in range(world)]
    orders = [s.epoch_order() for s in shards]
    assert len({len(s) for s in shards}) == 1 and len({len(o) for o in orders}) == 1
    union = np.concatenate(orders)
    if drop_last:
        assert len(union) == len(np.unique(union)) == 2000  # 562 rows per rank: 5 full batches of 100 each
    else:
        assert len(union) == 2252 and set(union) == set(store.indices("train"))  # 2 rows padded from the start
        assert len(np.unique(union)) == 2250
    one = BatchLoader(store, batch_size=100, seed=3)
    perm = one.epoch_order()
    np.testing.assert_array_equal(orders[1][:5], perm[1:20:4])  # rank r takes every world-th row from r


def test_resume_gives_identical_remaining_batches(store):
    ref = BatchLoader(store, batch_size=300, seed=7, prefetch=2)
    list(ref)  # epoch 0
    it = iter(ref)
    taken = [next(it) for _ in range(3)]  # 3 batches of epoch 1 delivered (more may be prefetched)
    state = ref.state_dict()
    rest_ref = list(it) + list(ref)  # rest of epoch 1, then epoch 2
    assert state["epoch"] == 1 and state["batches_delivered"] == 3 and len(taken) == 3
    resumed = BatchLoader(store, batch_size=300, seed=7, prefetch=0)
    resumed.load_state_dict(state)
    rest = list(resumed) + list(resumed)
    assert len(rest) == len(rest_ref) == len(ref) - 3 + len(ref)
    for (x, y), (xr, yr) in zip(rest, rest_ref):
        assert torch.equal(x, xr) and torch.equal(y, yr)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(store, batch_size=100, seed=7).load_state_dict(state)


def test_onehot_batches_and_relayout_match_direct_encoding(store):
    loader = BatchLoader(store, batch_size=128, seed=0, encoding=VAISHNAV)
    batch = next(loader.iter_codes())
    x, y = loader.to_device(batch)
    want, _ = encode([store.test_sequences[i] for i in batch.index], VAISHNAV)
    assert x.shape == (128, 4, 110) and x.dtype == torch.float32 and y.dtype == torch.float32
    # exact for every sequence the store holds whole (<= 112 nt); the store cut the ends of longer ones
    whole = torch.from_numpy(batch.lengths <= 112)
    assert 0 < int(whole.sum()) < 128
    assert torch.equal(x[whole], onehot(torch.from_numpy(want), VAISHNAV)[whole])
    assert torch.equal(y, torch.from_numpy(store.targets[batch.index]))
    x_native, _ = BatchLoader(store, batch_size=128, seed=0).to_device(batch)
    assert x_native.shape == (128, 5, 112) and torch.equal(x_native, onehot(torch.from_numpy(batch.codes)))


def test_prefetch_matches_synchronous_and_stops_early(store):
    a = [b.index for b in BatchLoader(store, batch_size=200, seed=4, prefetch=3).iter_codes()]
    b = [b.index for b in BatchLoader(store, batch_size=200, seed=4, prefetch=0).iter_codes()]
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and len(a) == len(b)
    loader = BatchLoader(store, batch_size=10, seed=4, prefetch=2)
    for i, _ in enumerate(loader):  # breaking out must not hang on the prefetch thread
        if i == 2:
            break
    assert loader.state_dict()["batches_delivered"] == 3


def test_index_split_and_bad_arguments(store):
    rows = np.array([5, 1, 9])
    loader = BatchLoader(store, rows, batch_size=2, shuffle=False)
    assert [b.index.tolist() for b in loader.iter_codes()] == [[5, 1], [9]]
    with pytest.raises(ValueError, match="row indices"):
        BatchLoader(store, np.array([N_ROWS]))
    with pytest.raises(ValueError, match="boolean mask"):
        BatchLoader(store, np.zeros(N_ROWS, dtype=bool))
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(store, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no full batch"):
        BatchLoader(store, "val", batch_size=1024, drop_last=True)


def test_store_layout_other_than_crmnet(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("ACGTAC\t1\nGG\t2\n")
    st = prepare([path], tmp_path / "s", encoding=Encoding(length=4, pad="start", truncate="start"), val_fraction=0)
    x, _ = BatchLoader(st, "all", batch_size=2, shuffle=False, encoding=Encoding(length=6)).to_device(
        next(BatchLoader(st, "all", batch_size=2, shuffle=False).iter_codes()))
    # stored as GTAC / NNGG; served at end-padding 6: GTACNN / GGNNNN (bases the store cut cannot return)
    assert x.argmax(1).tolist() == [[3, 4, 1, 2, 0, 0], [3, 3, 0, 0, 0, 0]]


def test_unpadded_shards_cover_every_row_once(store):
    n = len(store.indices("val"))
    shards = [BatchLoader(store, "val", 7, shuffle=False, rank=r, world_size=3, pad_shards=False)
              for r in range(3)]
    rows = np.concatenate([np.concatenate(rows_of(s)) for s in shards])
    assert len(rows) == n and sorted(rows.tolist()) == sorted(store.indices("val").tolist())
    assert [len(s.epoch_order()) for s in shards] == [len(range(r, n, 3)) for r in range(3)]


@pytest.mark.gpu
def test_cuda_batches_equal_cpu_batches_and_resume_counts_delivered_batches(store):
    cpu = list(BatchLoader(store, batch_size=64, seed=2))
    gpu = BatchLoader(store, batch_size=64, seed=2, device="cuda")
    got = []
    for i, (x, y) in enumerate(gpu):
        got.append((x.cpu(), y.cpu()))
        if i == 2:
            assert gpu.state_dict()["batches_delivered"] == 3  # the batch prefetched ahead does not count
    assert len(got) == len(cpu)
    for (xa, ya), (xb, yb) in zip(cpu, got):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
