"""Timing that can be trusted on a GPU: blocks timed with CUDA events, clocks logged, a memory-aware ladder.

Used by ``gpu_check.py`` and ``bench_train.py``; torch only (no other package), any torch >= 2.0.

* :func:`timed_blocks` — warm up, calibrate the calls per block from one synchronised call, then time at
  least ``blocks`` blocks and at least ``min_seconds`` in all; each block is one pair of CUDA events (on a
  CPU, ``time.perf_counter``) around back-to-back calls, so the device's queue stays full as in training.
  Reports the median seconds per call, its minimum and maximum over the blocks and the relative spread.
* :func:`gpu_clocks` — SM and memory clocks, temperature, power and throttle reasons from ``nvidia-smi``
  (None where there is none), logged before and after each configuration: a number measured while the
  clocks sagged says so.
* :func:`fits` — whether a batch is worth trying, from the peak memory per sample of the last batch
  that ran.
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import time

import torch

CLOCK_FIELDS = ("clocks.sm", "clocks.max.sm", "clocks.mem", "temperature.gpu", "power.draw",
                "clocks_throttle_reasons.active")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _block(fn, calls: int, device) -> float:
    """Seconds for ``calls`` back-to-back calls of ``fn()``, measured on the device's own clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - t


def timed_blocks(fn, device, *, min_seconds: float = 1.0, blocks: int = 3, warmup: int = 2,
                 max_blocks: int = 20) -> dict:
    """Seconds per call of ``fn()``: ≥ ``blocks`` blocks and ≥ ``min_seconds`` of timed calls in all.

    Parameters
    ----------
    fn : callable
        One unit of work (a training step, a forward pass) enqueued on ``device``.
    device : torch.device
    min_seconds : float
        Least total timed time; the calls per block are set from one synchronised call after warm-up.
    blocks : int
        Least number of blocks (their spread is reported).
    warmup : int
        Untimed calls first (allocator, autotuning, compilation).
    max_blocks : int
        Most blocks, should one block come out much shorter than calibrated.

    Returns
    -------
    dict
        ``s_call`` (median over blocks of seconds per call), ``s_call_min``, ``s_call_max``,
        ``spread`` ((max − min) / median), ``blocks``, ``calls_per_block``, ``timed_s``.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    one = _block(fn, 1, device)
    per_block = max(1, math.ceil(min_seconds / blocks / max(one, 1e-6)))
    times: list[float] = []  # seconds per call, one entry per block
    while len(times) < max_blocks:
        times.append(_block(fn, per_block, device) / per_block)
        if len(times) >= blocks and sum(times) * per_block >= min_seconds:
            break
    med = statistics.median(times)
    return {"s_call": med, "s_call_min": min(times), "s_call_max": max(times),
            "spread": (max(times) - min(times)) / med if med > 0 else 0.0, "blocks": len(times),
            "calls_per_block": per_block, "timed_s": round(sum(times) * per_block, 3)}


def gpu_clocks(index: int = 0) -> dict | None:
    """The GPU's current clocks (MHz), temperature (°C), power (W) and throttle reasons, or None.

    Parameters
    ----------
    index : int
        The GPU as ``nvidia-smi`` numbers it.

    Returns
    -------
    dict or None
        One entry per field of :data:`CLOCK_FIELDS`; None without ``nvidia-smi`` or when it fails.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, f"--id={index}", "--query-gpu=" + ",".join(CLOCK_FIELDS),
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5,
                             check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    values = [v.strip() for v in out.split(",")]
    return dict(zip(CLOCK_FIELDS, values)) if len(values) == len(CLOCK_FIELDS) else None


def fits(batch: int, previous: dict | None, total_mib: float | None, headroom: float = 0.85) -> bool:
    """Whether ``batch`` is likely to fit, scaling the peak memory of the last batch that ran.

    Parameters
    ----------
    batch : int
    previous : dict or None
        The last row that ran (``batch``, ``peak_mib``), or None (no estimate yet: try).
    total_mib : float or None
        The device's memory (None on a CPU: always try).
    headroom : float
        Fraction of the memory an estimate may use.

    Returns
    -------
    bool
    """
    if total_mib is None or not previous or not previous.get("peak_mib"):
        return True
    return previous["peak_mib"] * batch / previous["batch"] <= headroom * total_mib
