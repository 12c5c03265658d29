"""Batch-level sampling from a store.

Whole batches are gathered from the memory-mapped arrays with one fancy index each (no per-sample Python
work), moved to the device as uint8 codes, and re-laid out and one-hot encoded there in the model's
:class:`~crmnet.data.encoding.Encoding`.

Order. Each epoch is a permutation of the chosen rows drawn from ``numpy.random.default_rng([seed,
epoch])`` (the identity when ``shuffle=False``), so it is reproducible from the seed and different every
epoch. In a single process every row comes exactly once per epoch (the last batch is smaller unless
``drop_last``).

DDP. Rank ``r`` of ``world_size`` takes every ``world_size``-th row of the epoch's permutation,
starting at ``r``: disjoint shards of equal size. When the row count does not divide evenly, the
permutation is padded with its own first rows (like ``torch.utils.data.DistributedSampler``), so at most
``world_size - 1`` rows are seen twice in that epoch; with ``drop_last=True`` the remainder rows (at the
permutation's end, different ones each epoch) are left out of that epoch instead. ``pad_shards=False``
(validation) neither pads nor drops: every row once, the shards differ by at most one row.

CUDA. Host batches are gathered by a background thread, copied into pinned staging buffers that are
reused (two of them, so one fills while the other's copy is in flight), and sent to the GPU and one-hot
encoded on a side CUDA stream one batch ahead, so the copy overlaps the training step of the batch
before; the step's stream waits for its batch only. The CPU path does none of this.

Resume. :meth:`BatchLoader.state_dict` records the epoch and the number of batches already *delivered*
(prefetched batches do not count); :meth:`BatchLoader.load_state_dict` makes the next iteration start on
the exact next batch. Iterating to the end of an epoch moves the loader on to the next one, so ``for
epoch in ...: for x, y in loader`` sees a new order every epoch (``set_epoch`` sets it explicitly).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from crmnet.data.encoding import Encoding, onehot, relayout
from crmnet.data.store import Store, open_store
from crmnet.data.streams import background


class CodeBatch(NamedTuple):
    """One batch on the host, in delivery order.

    index: (B,) int64 store rows; codes: (B, W) uint8 in the store's layout; lengths: (B,) true lengths;
    targets: (B,) float32.
    """

    index: np.ndarray
    codes: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray


class BatchLoader:
    """Iterate ``(x, y)``: x (B, C, L) float32 one-hot in ``encoding`` on ``device``, y (B,) float32.

    store: a :class:`~crmnet.data.store.Store` or its path. split: ``"train"``, ``"val"``, ``"all"`` or an
    array of row indices. encoding: the model's Encoding (default: the store's). prefetch: batches
    gathered ahead by a background thread (0: none). pad_shards: with several ranks and without
    ``drop_last``, pad the epoch so that every rank has as many rows (training); False: unequal shards,
    every row exactly once (validation).
    """

    def __init__(
        self,
        store: Store | str | os.PathLike,
        split: str | np.ndarray = "train",
        batch_size: int = 1024,
        *,
        encoding: Encoding | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device="cpu",
        prefetch: int = 2,
        pad_shards: bool = True,
    ):
        import torch

        self.store = store if isinstance(store, Store) else open_store(store)
        if isinstance(split, str):
            rows = self.store.indices(split)
        else:
            if np.asarray(split).dtype == bool:  # would silently become rows 0 and 1
                raise ValueError("split must be 'train', 'val', 'all' or row indices, not a boolean mask")
            rows = np.asarray(split, dtype=np.int64).ravel()
            if len(rows) and (rows.min() < 0 or rows.max() >= len(self.store)):
                raise ValueError(f"row indices must lie in [0, {len(self.store)})")
        if not len(rows):
            raise ValueError(f"split {split if isinstance(split, str) else 'index array'} has no rows")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, not rank={rank}, world_size={world_size}")
        if drop_last and len(rows) < world_size * batch_size:
            raise ValueError(f"{len(rows)} rows make no full batch of {batch_size} on each of {world_size} ranks")
        self.rows = rows
        self.batch_size = batch_size
        self.encoding = encoding or self.store.encoding
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.pad_shards = pad_shards
        self._staging: list[_Staging | None] = [None, None]
        self.epoch = 0
        self._delivered = 0

    # ----- order -------------------------------------------------------------------------------------
    def _shard_size(self) -> int:
        n, ws = len(self.rows), self.world_size
        if self.drop_last:
            return n // ws
        return -(-n // ws) if self.pad_shards else len(range(self.rank, n, ws))

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        size = self._shard_size()
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def epoch_order(self, epoch: int | None = None) -> np.ndarray:
        """(k,) int64 store rows this rank delivers in ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        rows = self.rows
        if self.shuffle:
            rows = rows[np.random.default_rng([self.seed, epoch]).permutation(len(rows))]
        total = self._shard_size() * self.world_size
        if total != len(rows) and (self.drop_last or self.pad_shards):
            rows = np.resize(rows, total)  # truncates, or pads by repeating from the start
        order = rows[self.rank :: self.world_size]
        return order[: len(self) * self.batch_size]

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch (its order is drawn from ``(seed, epoch)``)."""
        self.epoch = int(epoch)
        self._delivered = 0

    # ----- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Where the loader stands (epoch, batches delivered) and how it is set up, for resuming."""
        return {"epoch": self.epoch, "batches_delivered": self._delivered, "seed": self.seed,
                "batch_size": self.batch_size, "rows": len(self.rows), "world_size": self.world_size,
                "rank": self.rank, "shuffle": self.shuffle, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``; the loader must be set up the same way (seed, batch size, rows, ranks)."""
        for key in ("seed", "batch_size", "rows", "world_size", "rank", "shuffle", "drop_last"):
            mine = self.state_dict()[key]
            if key in state and state[key] != mine:
                raise ValueError(f"loader state has {key}={state[key]!r} but this loader has {mine!r}")
        self.epoch = int(state["epoch"])
        self._delivered = int(state["batches_delivered"])

    # ----- batches -----------------------------------------------------------------------------------
    def gather(self, index: np.ndarray) -> CodeBatch:
        """The rows ``index`` as a host batch, in the given order (read from the memmap in sorted order)."""
        index = np.asarray(index, dtype=np.int64)
        order = np.argsort(index, kind="stable")
        ascending = index[order]
        s = self.store
        out = []
        for arr in (s.codes, s.lengths, s.targets):
            part = arr[ascending]
            whole = np.empty_like(part)
            whole[order] = part
            out.append(whole)
        codes, lengths, targets = out
        return CodeBatch(index, codes, lengths, targets)

    def _batches(self) -> Iterator[tuple[int, CodeBatch]]:
        order = self.epoch_order()
        for b in range(self._delivered, len(self)):
            yield b, self.gather(order[b * self.batch_size : (b + 1) * self.batch_size])

    def _host_batches(self) -> Iterator[tuple[int, CodeBatch]]:
        """(batch number, host batch) for the rest of the current epoch, gathered ahead by a thread."""
        if self._delivered >= len(self):  # a finished epoch resumes as the next one
            self.set_epoch(self.epoch + 1)
        source = self._batches() if self.prefetch <= 0 else background(self._batches(), self.prefetch)
        try:
            yield from source
        finally:
            close = getattr(source, "close", None)
            if close:
                close()

    def _epoch_done(self) -> None:
        if self._delivered >= len(self):
            self.set_epoch(self.epoch + 1)

    def iter_codes(self) -> Iterator[CodeBatch]:
        """The rest of the current epoch as host batches (the loader's position advances as they are taken)."""
        for b, batch in self._host_batches():
            self._delivered = b + 1
            yield batch
        self._epoch_done()

    def to_device(self, batch: CodeBatch):
        """(x, y): x (B, C, L) float32 one-hot in the loader's encoding, y (B,) float32, on the device."""
        import torch

        codes = torch.from_numpy(batch.codes)
        lengths = torch.from_numpy(batch.lengths.astype(np.int64))
        y = torch.from_numpy(batch.targets)
        if self.device.type != "cpu":
            codes, lengths, y = (t.to(self.device) for t in (codes, lengths, y))
        return self._encode(codes, lengths), y

    def _encode(self, codes, lengths):
        codes = relayout(codes, lengths, self.store.encoding, self.encoding)
        return onehot(codes, self.encoding)

    def __iter__(self):
        if self.device.type == "cuda":
            yield from self._iter_cuda()
            return
        for batch in self.iter_codes():
            yield self.to_device(batch)

    # ----- CUDA: pinned staging buffers, side-stream upload one batch ahead ---------------------------
    def _iter_cuda(self):
        import torch

        stream = torch.cuda.Stream(self.device)
        pending = None
        for i, (b, batch) in enumerate(self._host_batches()):
            ready = (b, *self._upload(batch, i % 2, stream))
            if pending is not None:
                yield self._handoff(*pending)
            pending = ready
        if pending is not None:
            yield self._handoff(*pending)
        self._epoch_done()

    def _upload(self, batch: CodeBatch, slot: int, stream):
        """Start sending ``batch`` to the GPU on ``stream`` through staging buffer ``slot``: (x, y, event)."""
        import torch

        n, width = batch.codes.shape
        staging = self._staging[slot]
        if staging is None or staging.codes.shape[1] != width:
            staging = self._staging[slot] = _Staging(self.batch_size, width)
        staging.fill(batch)  # waits for this buffer's previous copy (two batches ago) to finish
        with torch.cuda.stream(stream):
            codes, lengths, y = (t[:n].to(self.device, non_blocking=True)
                                 for t in (staging.codes, staging.lengths, staging.targets))
            staging.copied.record(stream)
            x = self._encode(codes, lengths)
            done = torch.cuda.Event()
            done.record(stream)
        return x, y, done

    def _handoff(self, b: int, x, y, done):
        """The batch for the consumer's stream: wait for its upload only, keep its memory for that stream."""
        import torch

        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        x.record_stream(current)
        y.record_stream(current)
        self._delivered = b + 1
        return x, y


class _Staging:
    """Pinned host buffers for one batch (reused every other batch) and the event of their last copy."""

    def __init__(self, batch_size: int, width: int):
        import torch

        self.codes = torch.empty((batch_size, width), dtype=torch.uint8).pin_memory()
        self.lengths = torch.empty(batch_size, dtype=torch.int64).pin_memory()
        self.targets = torch.empty(batch_size, dtype=torch.float32).pin_memory()
        self.copied = torch.cuda.Event()

    def fill(self, batch: CodeBatch) -> None:
        self.copied.synchronize()  # an event never recorded counts as done
        n = len(batch.targets)
        self.codes[:n].numpy()[...] = batch.codes
        self.lengths[:n].numpy()[...] = batch.lengths
        self.targets[:n].numpy()[...] = batch.targets
