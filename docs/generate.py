"""Regenerate the tables in README.md and docs/*.md that the code owns, or check that they are current.

Usage::

    PYTHONPATH=src python docs/generate.py          # rewrite every generated block in place
    PYTHONPATH=src python docs/generate.py --check  # exit 1 naming each stale block (tests/test_docs.py)

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``; everything
between the two markers is replaced by :func:`blocks`' text for NAME. The numbers come from one place each:
the model registry (parameters, FLOPs, input layout, as ``crmnet models`` prints them), the released-model
catalogue (``crmnet zoo``), the input-format registry, the web page's limits (``ServeConfig``) and the kept
benchmark results (``benchmarks/results/``: the serve load test, ``speed-*.json``, ``gpu/report.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- generated: ([a-z-]+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


@functools.cache
def _models() -> str:
    from crmnet.cli.models import model_table
    from crmnet.tables import render

    return render(["name", "params", "BN stats", "MFLOP/seq", "input", "description"],
                  [[r["name"], f"{r['params']:,}", f"{r['buffers']:,}", f"{r['flops'] / 1e6:.1f}", r["input"],
                    r["description"]] for r in model_table()])


@functools.cache
def _zoo() -> str:
    from crmnet.tables import render
    from crmnet.zoo.catalogue import COLUMNS, zoo_rows

    return render(COLUMNS, zoo_rows())


@functools.cache
def _zoo_short() -> str:
    from crmnet.tables import render
    from crmnet.zoo.catalogue import RELEASED, parameters

    return render(["released model", "medium", "parameters", "published test r", "get it"],
                  [[m.name, m.medium, f"{parameters(m.model):,}", m.metrics, f"`crmnet download {m.download}`"]
                   for m in RELEASED.values()])


@functools.cache
def _formats() -> str:
    from crmnet.data.formats import INPUT_FORMATS
    from crmnet.tables import render

    return render(["format", "what", "`prepare` (training)"],
                  [[f"`{name}`", f.description, "yes" if f.measured else "no (no measured values)"]
                   for name, f in INPUT_FORMATS.items()])


@functools.cache
def _serve_limits() -> str:
    from crmnet.serve.config import ServeConfig
    from crmnet.tables import render

    defaults = ServeConfig()
    return render(["setting (`ServeConfig`)", "default"],
                  [[f"`{f.name}`", f"{getattr(defaults, f.name):,}" if isinstance(getattr(defaults, f.name), int)
                    else str(getattr(defaults, f.name))] for f in dataclasses.fields(ServeConfig)])


@functools.cache
def _load_test() -> str:
    """The last measured load test of ``crmnet serve`` (``benchmarks/load_serve.py --json``, kept in
    ``benchmarks/results/load_serve.json``)."""
    import json

    from crmnet.tables import render

    r = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/load_serve.json").read_text())
    lat = r["latency"]
    rows = [
        ["clients × seconds", f"{r['clients']} × {r['seconds']:g} s on 127.0.0.1 ({r['cpus']} cores, load "
                              f"average {r['load_average_1min_at_end']:g} at the end)"],
        ["requests, throughput", f"{r['requests']:,}, {r['requests_per_s']:g} requests/s"],
        ["errors", f"{sum(r['errors'].values()) if r['errors'] else 0}"],
        ["refused with 503 (job queue full, by design)", f"{r['refused_queue_full']:,}"],
        ["jobs completed", ", ".join(f"{n} {k}" for k, n in r["jobs_done"].items())],
        *[[f"{name} latency p50 / p99", f"{v['p50_s']:.3g} s / {v['p99_s']:.3g} s (n {v['n']:,})"]
          for name, v in sorted(lat.items())],
        ["server peak memory", f"{r['server_peak_rss_mib']:g} MiB"],
    ]
    return render(["load test of `crmnet serve`", "measured"], rows)


RESULTS = ROOT / "benchmarks" / "results"


def _speed() -> str:
    """Every kept speed result (``benchmarks/results/speed-*.json``, :mod:`benchmarks.speedlog`'s format)."""
    import json

    from crmnet.tables import render

    rows, sources = [], []
    for path in sorted(RESULTS.glob("speed-*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        c = r["conditions"]
        sources.append(f"- `{path.name}`: `{r['command']}` — {c['date']}, {c['cpu']} ({c['isa']}), {c['cores']} "
                       f"cores, load average {c['load_average'][0]:g} at the start, torch {c['torch']}, "
                       f"{c['peer']}, {c['threads']} thread per side")
        for x in r["rows"]:
            med, lo, hi = x["ratio_cpu"]
            wmed, wlo, whi = x["ratio_wall"]
            rows.append([x["model"], x["work"], x["peer"], f"{x['crmnet_cpu']:,.0f} vs {x['peer_cpu']:,.0f} {x['unit']}",
                         f"**{med:.2f}** ({lo:.2f}–{hi:.2f})", f"{wmed:.2f} ({wlo:.2f}–{whi:.2f})", f"`{path.name}`"])
    table = render(["model", "work", "strongest peer configuration", "crmnet vs peer, per CPU second",
                    "speed-up, CPU time (range over rounds)", "speed-up, wall time", "result file"], rows)
    return table + "\n" + "\n".join(sources) + "\n"


def _gpu() -> str:
    """The GPU check's training table from ``benchmarks/results/gpu/report.json``, when a run was kept."""
    import importlib.util
    import json

    report = RESULTS / "gpu" / "report.json"
    if not report.is_file():
        return ("No GPU run is kept yet: on a GPU machine run `python benchmarks/gpu_check.py --out gpu-report`, "
                "copy its `report.json` to `benchmarks/results/gpu/report.json` and run `docs/generate.py`.\n")
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    r = json.loads(report.read_text(encoding="utf-8"))
    env = (r["sections"].get("env") or {}).get("result") or {}
    name = (env.get("gpu") or {}).get("name", r.get("device", "?"))
    table1 = (r["sections"].get("table1") or {}).get("result") or {}
    torch = (env.get("versions") or {}).get("torch", "?")
    return f"Device: {name}, torch {torch}.\n\n" + "\n".join(gpu_check._render_table1(table1)) + "\n"


def blocks() -> dict[str, Callable[[], str]]:
    """Every generated block: name → a function returning its Markdown text (ending with a newline).

    Returns
    -------
    dict of str to callable
        The block name used in the ``<!-- generated: NAME -->`` marker → its renderer.
    """
    return {"models": _models, "zoo": _zoo, "zoo-short": _zoo_short, "formats": _formats,
            "serve-limits": _serve_limits, "load-test": _load_test, "speed": _speed, "gpu": _gpu}


def regenerate(text: str, source: str = "page") -> str:
    """``text`` with every generated block replaced by its current content.

    Parameters
    ----------
    text : a Markdown page.
    source : its name, for the error about an unknown block.

    Returns
    -------
    str
        The page with current blocks (identical to ``text`` when nothing is stale).
    """
    known = blocks()

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in known:
            raise ValueError(f"{source}: unknown generated block {name!r} (known: {', '.join(known)})")
        return match.group(1) + known[name]() + match.group(4)

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks of README.md and docs/*.md, or with ``--check`` report the stale ones.

    Parameters
    ----------
    argv : command-line arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every page is current (or was rewritten), 1 when ``--check`` found a stale one.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit status 1)")
    args = parser.parse_args(argv)
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = regenerate(text, page.name)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new, encoding="utf-8")
    for page in stale:
        print(f"{page}: generated tables {'are stale' if args.check else 'rewritten'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
