"""The one format of the speed results that README's speed table is generated from.

``bench_keras.py``, ``bench_legnet.py`` and ``bench_ism.py`` take ``--json PATH``; kept as
``benchmarks/results/speed-*.json``, ``docs/generate.py`` renders every such file's rows into the README's
``speed`` block, so the table always shows what a run measured, with its conditions.

A file holds::

    {"benchmark": "bench_keras", "command": "python benchmarks/bench_keras.py ...",
     "conditions": {"date": ..., "cpu": ..., "isa": ..., "cores": ..., "load_average": [...],
                    "torch": ..., "peer": "TensorFlow 2.21.0", "threads": 1},
     "rows": [{"model": "deepatt", "work": "inference, batch 64", "peer": "keras-xla",
               "unit": "sequences/s", "crmnet_cpu": 9285.0, "peer_cpu": 7277.0,
               "ratio_cpu": [1.27, 1.26, 1.28], "ratio_wall": [1.27, 1.26, 1.29]}, ...],
     "raw": {...}}

Rates are per CPU second of the process (every thread); a ratio is ``[median, min, max]`` over the
interleaved rounds of crmnet's rate / the peer's (> 1: crmnet faster).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def time_calls(call: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """One warm-up, then CPU and wall seconds of ``repeats`` calls of ``call()``.

    Parameters
    ----------
    call : what is timed.
    repeats : timed calls.

    Returns
    -------
    (list of float, list of float)
        CPU seconds (``time.process_time``, every thread of the process) and wall seconds, per call.
    """
    call()
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        call()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return cpu, wall


def interleave(names: list[str], rounds: int, timer: Callable[[str], tuple[list[float], list[float]]]) -> dict:
    """Time every contender once per round, in an order rotated from round to round.

    Parameters
    ----------
    names : the contenders.
    rounds : rounds.
    timer : name → (CPU seconds, wall seconds) of that contender's calls in this round.

    Returns
    -------
    dict
        name → ``{"cpu": [...], "wall": [...], "round_cpu": [...], "round_wall": [...]}``: every call's
        seconds and each round's median.
    """
    out = {n: {"cpu": [], "wall": [], "round_cpu": [], "round_wall": []} for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            cpu, wall = timer(name)
            o = out[name]
            o["cpu"] += cpu
            o["wall"] += wall
            o["round_cpu"].append(statistics.median(cpu))
            o["round_wall"].append(statistics.median(wall))
    return out


def time_ratio(times: dict, name: str, peer: str, clock: str) -> tuple[float, float, float]:
    """Median, min and max over rounds of the peer's time / ``name``'s (> 1: ``name`` faster).

    Parameters
    ----------
    times : :func:`interleave`'s result.
    name, peer : two of its contenders.
    clock : ``"cpu"`` or ``"wall"``.

    Returns
    -------
    (float, float, float)
    """
    per_round = [p / c for p, c in zip(times[peer][f"round_{clock}"], times[name][f"round_{clock}"])]
    return statistics.median(per_round), min(per_round), max(per_round)


def table_rows(batch: int, result: dict, peers: tuple[str, ...], digits: int = 1) -> list[str]:
    """Markdown rows for one batch size: every contender's medians, its ratios to each peer, its max |Δy|.

    Parameters
    ----------
    batch : the batch size.
    result : ``{"times": interleave's result, "max_abs_diff": {name: float}}``.
    peers : the peer configurations, one ratio column each (``–`` where a peer did not run).
    digits : decimals of the milliseconds.

    Returns
    -------
    list of str
    """
    rows = []
    times = result["times"]
    for name, t in times.items():
        cpu, wall = statistics.median(t["cpu"]), statistics.median(t["wall"])
        cells = [str(batch), name, f"{cpu * 1e3:.{digits}f}", f"{wall * 1e3:.{digits}f}", f"{batch / cpu:,.0f}"]
        for peer in peers:
            if peer in times and name not in peers:
                c, w = time_ratio(times, name, peer, "cpu"), time_ratio(times, name, peer, "wall")
                cells.append(f"{c[0]:.2f} ({c[1]:.2f}–{c[2]:.2f}) / {w[0]:.2f} ({w[1]:.2f}–{w[2]:.2f})")
            else:
                cells.append("–")
        d = result["max_abs_diff"].get(name)
        cells.append("–" if d is None else f"{d:.1e}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def conditions(peer: str, threads: int = 1) -> dict:
    """Where and how a benchmark ran: date, CPU and its vector ISA as PyTorch sees it, cores, load, versions.

    Parameters
    ----------
    peer : the peer's name and version, e.g. ``"TensorFlow 2.21.0"``.
    threads : threads per side.

    Returns
    -------
    dict
    """
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "isa": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__, "peer": peer, "threads": threads}


def ratio(crmnet: list[float], peer: list[float]) -> list[float]:
    """``[median, min, max]`` over rounds of crmnet's rate / the peer's rate (rates, not times).

    Parameters
    ----------
    crmnet, peer : one rate per round, in the same order.

    Returns
    -------
    list of 3 floats
    """
    per_round = [c / p for c, p in zip(crmnet, peer)]
    return [round(statistics.median(per_round), 3), round(min(per_round), 3), round(max(per_round), 3)]


def row(model: str, work: str, peer: str, unit: str, crmnet: dict, other: dict) -> dict:
    """One comparison: crmnet's and the peer's per-round rates (``{"cpu": [...], "wall": [...]}``) summarised.

    Parameters
    ----------
    model : the model compared (``deepatt``, ``crmnet-tiny`` …).
    work : what was timed, e.g. ``"inference, batch 64"``.
    peer : the peer's configuration (its strongest one).
    unit : what the rates count per second.
    crmnet, other : per-round rates of crmnet and of the peer, CPU and wall.

    Returns
    -------
    dict
    """
    return {"model": model, "work": work, "peer": peer, "unit": unit,
            "crmnet_cpu": round(statistics.median(crmnet["cpu"]), 1),
            "peer_cpu": round(statistics.median(other["cpu"]), 1),
            "ratio_cpu": ratio(crmnet["cpu"], other["cpu"]), "ratio_wall": ratio(crmnet["wall"], other["wall"])}


def batch_rows(model: str, results: dict, peers: tuple[str, ...], contender: str = "crmnet-fast") -> list[dict]:
    """Per batch size, ``contender`` against the fastest of ``peers`` at that batch (by median CPU time).

    Parameters
    ----------
    model : the model compared.
    results : batch → ``{"times": {name: {"round_cpu": [...], "round_wall": [...], "cpu": [...]}}}``, the
        per-round median seconds per call that ``bench_keras.py`` and ``bench_legnet.py`` collect.
    peers : the peer's configurations.
    contender : crmnet's contender.

    Returns
    -------
    list of dict
        :func:`row` results, one per batch size where a peer ran.
    """
    rows = []
    for batch, result in results.items():
        times = result["times"]
        present = [k for k in peers if k in times]
        if not present or contender not in times:
            continue
        best = min(present, key=lambda k: statistics.median(times[k]["cpu"]))
        rates = {k: {clock: [int(batch) / t for t in times[k][f"round_{clock}"]] for clock in ("cpu", "wall")}
                 for k in (contender, best)}
        rows.append(row(model, f"inference, batch {batch}", best, "sequences/s", rates[contender], rates[best]))
    return rows


def save(path: Path, benchmark: str, cond: dict, rows: list[dict], raw: dict) -> None:
    """Write the result file (the command that produced it is this process's command line).

    Parameters
    ----------
    path : where to write.
    benchmark : the script's name.
    cond : :func:`conditions`.
    rows : :func:`row` results.
    raw : every timing, for whoever wants to recompute.
    """
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    text = json.dumps({"benchmark": benchmark, "command": command, "conditions": cond, "rows": rows, "raw": raw},
                      indent=1, default=str)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
