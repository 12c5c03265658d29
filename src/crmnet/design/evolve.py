"""Evolution trajectories under a model (or any objective): neutral drift, SSWM and a genetic algorithm.

Only the window mutates (by default the 80-nt variable region between the construct's flanks); the
flanks stay. Every mode is reproducible from ``seed``.

* ``drift``: ``population`` replicate lineages per start sequence; each generation every lineage takes
  ``mutations`` random substitutions (a random position of the window, a random other base), with no
  selection — Vaishnav et al.'s random genetic drift.
* ``sswm`` (strong selection, weak mutation): each step every lineage moves to its best single mutant
  (highest objective with ``direction="max"``, lowest with ``"min"``); a lineage stops at a local optimum,
  when no single mutant improves it, so its objective strictly improves at every step it takes.
* ``ga``: per start sequence a population of ``population`` sequences (the start and mutated copies)
  evolves towards ``target``: fitness ``−|objective − target|``, parents by tournament (``tournament``
  sequences) or truncation (the best half), uniform crossover with probability ``crossover``, each window
  base mutated with probability ``mutation_rate``, the ``elite`` best kept unchanged; it stops when a
  sequence is within ``tolerance`` of the target (or after ``generations``).

``constraints`` (:class:`~crmnet.design.constraints.ConstraintConfig`) hold in every mode: the start
sequences must pass them (an :class:`InputError` naming the line otherwise), and a proposal that breaks
one is never taken — drift redraws it (up to ``REDRAWS`` times, else the lineage stays that generation),
SSWM never scores it, a GA child that breaks one is replaced by its first parent. ``--min-distance``
concerns a library of designs, not a trajectory, and is not used here.

:func:`evolve` yields one :class:`Generation` per step; :func:`evolve_to_file` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from crmnet.config import Config
from crmnet.design.constraints import ConstraintConfig, Constraints
from crmnet.design.mutagenesis import resolve_windows, single_mutants
from crmnet.design.oracle import Objective, encode_sequences
from crmnet.errors import InputError

MODES = ("drift", "sswm", "ga")
REDRAWS = 10  # drift: proposals drawn per lineage and generation before a constrained lineage stays


@dataclass
class EvolveConfig(Config):
    """Settings of :func:`evolve` (see the module docstring); ``window`` is 0-based half-open or None."""

    mode: str = "sswm"
    generations: int = 10
    seed: int = 0
    direction: str = "max"
    mutations: int = 1
    population: int = 1
    mutation_rate: float = 0.01
    crossover: float = 0.5
    selection: str = "tournament"
    tournament: int = 3
    elite: int = 1
    target: float | None = None
    tolerance: float = 0.1
    window: tuple[int, int] | None = None
    constraints: ConstraintConfig = field(default_factory=ConstraintConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.mode in MODES, "--mode", f"must be one of {', '.join(MODES)}"),
            (self.generations >= 1, "--generations", "must be at least 1"),
            (self.direction in ("max", "min"), "--direction", "must be max or min"),
            (self.mutations >= 1, "--mutations", "must be at least 1"),
            (self.population >= 1, "--population", "must be at least 1"),
            (0.0 <= self.mutation_rate <= 1.0, "--mutation-rate", "must lie in [0, 1]"),
            (0.0 <= self.crossover <= 1.0, "--crossover", "must lie in [0, 1]"),
            (self.selection in ("tournament", "truncation"), "--selection", "must be tournament or truncation"),
            (self.tournament >= 1, "--tournament", "must be at least 1"),
            (0 <= self.elite < max(self.population, 2), "--elite", "must be at least 0 and below --population"),
            (self.tolerance > 0, "--tolerance", "must be positive"),
        ]
        for ok, option, problem in checks:
            if not ok:
                raise InputError(None, f"{option} {getattr(self, option[2:].replace('-', '_'))!r} {problem}")
        if self.mode == "ga" and self.target is None:
            raise InputError(None, "--target is needed with --mode ga")
        if self.mode == "ga" and self.population < 2:
            raise InputError(None, f"--population {self.population} is too small for a GA: give at least 2")


@dataclass
class Generation:
    """One step of every lineage.

    generation : int
    lineage : (R,) int — start-sequence index (sswm, ga) or replicate lineage (drift)
    start : (R,) int — which start sequence each row descends from
    codes : (R, W) uint8 sequence-space codes; predictions : name → (R,) float32; objective : (R,) float64
    """

    generation: int
    lineage: np.ndarray
    start: np.ndarray
    codes: np.ndarray
    predictions: dict
    objective: np.ndarray


def _score(objective: Objective, codes: np.ndarray, lengths: np.ndarray) -> tuple[dict, np.ndarray]:
    preds = objective.predict(codes, lengths)
    return preds, objective.combine(preds)


def _random_mutations(rng: np.random.Generator, codes: np.ndarray, windows: np.ndarray, k: int) -> None:
    """Make ``k`` random substitutions per row of ``codes`` in place.

    Each substitution changes a base to one of the other three.
    """
    rows = np.arange(len(codes))
    for _ in range(k):
        pos = rng.integers(windows[:, 0], windows[:, 1])
        codes[rows, pos] = (np.minimum(codes[rows, pos], 3) + rng.integers(1, 4, len(rows))) % 4


def _drift(objective, rng, codes, lengths, windows, cfg, rules: Constraints, start) -> Iterator[tuple]:
    for g in range(1, cfg.generations + 1):
        todo = np.arange(len(codes))
        for _ in range(REDRAWS):
            proposal = codes[todo].copy()
            _random_mutations(rng, proposal, windows[todo], cfg.mutations)
            ok = rules.valid(proposal, windows[todo], start[todo])
            codes[todo[ok]] = proposal[ok]
            todo = todo[~ok]
            if not len(todo):
                break
        yield g, codes.copy(), np.ones(len(codes), bool)


def _sswm(objective, rng, codes, lengths, windows, cfg, current, rules: Constraints, start) -> Iterator[tuple]:
    import torch

    sign = 1.0 if cfg.direction == "max" else -1.0
    active = np.ones(len(codes), bool)
    for g in range(1, cfg.generations + 1):
        rows = np.flatnonzero(active)
        if not len(rows):
            return
        row, pos, base, mutants = single_mutants(torch.as_tensor(codes[rows]), torch.as_tensor(windows[rows]))
        row, pos, base, mutants = row.numpy(), pos.numpy(), base.numpy(), mutants.numpy()
        ok = rules.mutable(windows[rows][row], codes.shape[1])[np.arange(len(row)), pos]
        ok[ok] = rules.valid(mutants[ok], windows[rows][row[ok]], start[rows][row[ok]])
        row, pos, base, mutants = row[ok], pos[ok], base[ok], mutants[ok]
        value = sign * _score(objective, mutants, lengths[rows][row])[1] if len(row) else np.zeros(0)
        best = np.full(len(rows), -np.inf)
        np.maximum.at(best, row, value)
        for j, r in enumerate(rows):  # the first best mutant of each lineage (ties: lowest position, base)
            if not best[j] > sign * current[r]:
                active[r] = False
                continue
            k = np.flatnonzero((row == j) & (value == best[j]))[0]
            codes[r, pos[k]] = base[k]
            current[r] = sign * best[j]
        yield g, codes.copy(), active.copy()


def _ga_step(rng, pop, fitness, windows, cfg, rules: Constraints, start) -> np.ndarray:
    """The next population (P, W) from ``pop`` and its fitness (P,) (higher is better).

    A child that breaks a constraint is replaced by its first parent.
    """
    p = len(pop)
    order = np.argsort(-fitness, kind="stable")
    n_child = p - cfg.elite
    if cfg.selection == "tournament":
        entrants = rng.integers(0, p, size=(2 * n_child, cfg.tournament))
        parents = entrants[np.arange(2 * n_child), np.argmax(fitness[entrants], axis=1)]
    else:
        parents = order[rng.integers(0, max(1, p // 2), size=2 * n_child)]
    mum, dad = pop[parents[:n_child]], pop[parents[n_child:]]
    cross = (rng.random(n_child) < cfg.crossover)[:, None] & (rng.random(mum.shape) < 0.5)
    child = np.where(cross, dad, mum)
    pos = np.arange(pop.shape[1])
    inside = (pos >= windows[0, 0]) & (pos < windows[0, 1])
    hit = (rng.random(child.shape) < cfg.mutation_rate) & inside
    shift = rng.integers(1, 4, size=child.shape).astype(np.uint8)
    child = np.where(hit, (np.minimum(child, 3) + shift) % 4, child).astype(np.uint8)
    w = np.repeat(windows[:1], len(child), 0)
    bad = ~rules.valid(child, w, np.repeat(start[None, :], len(child), 0))
    child[bad] = mum[bad]
    return np.concatenate([pop[order[: cfg.elite]], child])


def _ga(objective, rng, start_codes, lengths, windows, cfg, rules: Constraints) -> Iterator[Generation]:
    """GA per start sequence; yields every generation of all still-running populations."""
    p = cfg.population
    pops = {s: np.repeat(start_codes[s : s + 1], p, 0) for s in range(len(start_codes))}
    for s, pop in pops.items():
        _random_mutations(rng, pop[1:], np.repeat(windows[s : s + 1], p - 1, 0), 1)
        bad = ~rules.valid(pop, np.repeat(windows[s : s + 1], p, 0), np.repeat(start_codes[s : s + 1], p, 0))
        pop[bad] = start_codes[s]
    for g in range(cfg.generations + 1):
        starts = sorted(pops)
        if not starts:
            return
        codes = np.concatenate([pops[s] for s in starts])
        lens = np.repeat(lengths[starts], p)
        preds, obj = _score(objective, codes, lens)
        start = np.repeat(starts, p)
        yield Generation(g, start.copy(), start, codes, preds, obj)
        for j, s in enumerate(starts):
            fit = -np.abs(obj[j * p : (j + 1) * p] - cfg.target)
            if -fit.max() <= cfg.tolerance or g == cfg.generations:
                del pops[s]
            else:
                pops[s] = _ga_step(rng, pops[s], fit, windows[s : s + 1], cfg, rules, start_codes[s])


def evolve(objective: Objective, sequences: Sequence[str], config: EvolveConfig | None = None,
           source: str | None = None, lines: Sequence[int] | None = None) -> Iterator[Generation]:
    """Evolve ``sequences`` under ``objective``; yields generation 0 (the starts) and then every step.

    Parameters
    ----------
    objective : Objective
    sequences : list of str
        Start sequences (lengths may differ).
    config : EvolveConfig
    source, lines : where the sequences came from, for error messages

    Yields
    ------
    Generation
        drift: all lineages each generation; sswm: the lineages that moved; ga: every population.
    """
    cfg = config or EvolveConfig()
    if cfg.target is not None:
        lo, hi = objective.value_range()
        if not lo <= cfg.target <= hi:
            raise InputError(None, f"--target {cfg.target:g} lies outside the objective's range [{lo:g}, {hi:g}]")
    codes, lengths = encode_sequences(sequences, source, lines)
    windows = resolve_windows(codes, lengths, cfg.window, source, lines)
    if ((windows[:, 1] - windows[:, 0]) < 1).any():
        raise InputError(source, "a start sequence has an empty window: nothing can mutate")
    rules = Constraints(cfg.constraints)
    rules.check_starts(codes, windows, source, lines)
    rng = np.random.default_rng(cfg.seed)
    if cfg.mode == "ga":
        yield from _ga(objective, rng, codes, lengths, windows, cfg, rules)
        return
    reps = cfg.population if cfg.mode == "drift" else 1
    start = np.repeat(np.arange(len(codes)), reps)
    codes, lengths, windows = codes[start].copy(), lengths[start], windows[start]
    origin = codes.copy()
    preds, obj = _score(objective, codes, lengths)
    lineage = np.arange(len(codes))
    yield Generation(0, lineage, start, codes.copy(), preds, obj)
    steps = (_drift(objective, rng, codes, lengths, windows, cfg, rules, origin) if cfg.mode == "drift"
             else _sswm(objective, rng, codes, lengths, windows, cfg, obj.copy(), rules, origin))
    for g, now, moved in steps:
        if not moved.any():
            return
        preds, obj = _score(objective, now[moved], lengths[moved])
        yield Generation(g, lineage[moved], start[moved], now[moved], preds, obj)


def mutations_from(start: np.ndarray, codes: np.ndarray, length: int) -> list[str]:
    """``A23G``-style labels (1-based) of the positions where ``codes`` (W,) differs from ``start`` (W,)."""
    diff = np.flatnonzero(start[:length] != codes[:length])
    return [f"{'ACGTN'[start[j]]}{j + 1}{'ACGTN'[codes[j]]}" for j in diff]


def trajectory_columns(names: Sequence[str]) -> list[str]:
    """The columns of a trajectory table (``trajectory.tsv`` of ``crmnet evolve`` and of the Evolve page).

    Parameters
    ----------
    names : the objective's model names, in order (one ``prediction_<name>`` column each).

    Returns
    -------
    list of str
        ``start_id, lineage, generation, individual, sequence, prediction_<name>..., objective,
        n_mutations, mutations``.
    """
    return ["start_id", "lineage", "generation", "individual", "sequence", *(f"prediction_{n}" for n in names),
            "objective", "n_mutations", "mutations"]


def trajectory_rows(gen: Generation, codes0: np.ndarray, lengths0: np.ndarray, ids: Sequence[str]) -> list[list]:
    """The rows of one generation in :func:`trajectory_columns` order (write them with :func:`crmnet.tables.tsv_row`).

    Parameters
    ----------
    gen : one :class:`Generation` of :func:`evolve` (R rows).
    codes0 : (S, W) uint8 codes of the start sequences.
    lengths0 : (S,) their lengths.
    ids : the S start sequences' ids.

    Returns
    -------
    list of list
        R rows: start id, lineage, generation, individual (rank within its lineage), sequence, one float
        prediction per model (``gen.predictions`` order), objective, the number of mutations and their
        ``;``-joined 1-based labels relative to the start (:func:`mutations_from`).
    """
    individual = np.arange(len(gen.lineage)) - np.searchsorted(gen.lineage, gen.lineage)
    rows = []
    for i in range(len(gen.lineage)):
        s = int(gen.start[i])
        muts = mutations_from(codes0[s], gen.codes[i], int(lengths0[s]))
        rows.append([ids[s], int(gen.lineage[i]), gen.generation, int(individual[i]),
                     "".join("ACGTN"[c] for c in gen.codes[i, : lengths0[s]]),
                     *(float(p[i]) for p in gen.predictions.values()), float(gen.objective[i]), len(muts),
                     ";".join(muts)])
    return rows


def trajectory_plot(generation: np.ndarray, lineage: np.ndarray, objective: np.ndarray, expression: str,
                    config: EvolveConfig):
    """The trajectory figure of a run (``trajectory.png`` of ``crmnet evolve`` and of the Evolve page).

    Parameters
    ----------
    generation, lineage : (R,) int, every row of the run's trajectory.
    objective : (R,) float, the objective of each row.
    expression : the objective's expression (the title).
    config : the run's settings (mode, direction, target).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from crmnet.plot.design import trajectory_figure

    ga = config.mode == "ga"
    title = f"{config.mode}: {expression}" + (f" ({config.direction})" if config.mode == "sswm" else "")
    return trajectory_figure(generation, lineage, objective, title, config.target if ga else None,
                             config.tolerance if ga else None)


def evolve_to_file(objective: Objective, ids: Sequence[str], sequences: Sequence[str], out, config: EvolveConfig,
                   *, source: str | None = None, lines: Sequence[int] | None = None, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """Run :func:`evolve` and write the directory ``out`` atomically.

    ``out/trajectory.tsv``: one row per sequence and generation — ``start_id, lineage, generation,
    individual, sequence``, one ``prediction_<name>`` column per model, ``objective``, ``n_mutations`` and
    ``mutations`` (relative to the start sequence, ``;``-separated); ``out/trajectory.png``; ``out/config.json``.
    Every row is checked against the constraints again before it is written.

    Returns
    -------
    dict
        ``generations`` run, ``rows`` written, ``final`` objective per start (best of the last generation).
    """
    import json
    from pathlib import Path

    from crmnet.fsutil import atomic_path
    from crmnet.plot.common import save_png
    from crmnet.progress import progress as progress_bar
    from crmnet.tables import tsv_row

    codes0, lengths0 = encode_sequences(sequences, source, lines)
    windows0 = resolve_windows(codes0, lengths0, config.window, source, lines)
    rules = Constraints(config.constraints)
    names = list(objective.predictors)
    gens, lins, objs, rows = [], [], [], 0
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps({**config.to_dict(), "objective": objective.expression,
                                                     "penalty": _penalty_dict(objective)},
                                                    indent=2) + "\n", encoding="utf-8")
        with open(tmp / "trajectory.tsv", "w", encoding="utf-8") as fh, progress_bar(
                total=config.generations, desc=f"evolve ({config.mode})", unit="generation", enable=progress) as bar:
            fh.write(tsv_row(trajectory_columns(names)))
            for gen in evolve(objective, sequences, config, source, lines):
                rules.require(gen.codes, windows0[gen.start], codes0[gen.start], what="trajectory row")
                fh.writelines(tsv_row(row) for row in trajectory_rows(gen, codes0, lengths0, ids))
                rows += len(gen.lineage)
                gens.append(np.full(len(gen.lineage), gen.generation))
                lins.append(gen.lineage)
                objs.append(gen.objective)
                bar.update(1 if gen.generation else 0)
        g, lin, obj = np.concatenate(gens), np.concatenate(lins), np.concatenate(objs)
        save_png(trajectory_plot(g, lin, obj, objective.expression, config), Path(tmp) / "trajectory.png")
    return {"generations": int(g.max()), "rows": rows, "final": _final(g, lin, obj, config)}


def _final(generation: np.ndarray, lineage: np.ndarray, objective: np.ndarray, config: EvolveConfig) -> dict:
    """Per lineage: the objective at its last generation (GA: the one closest to the target)."""
    out = {}
    for k in np.unique(lineage):
        sel = lineage == k
        last = sel & (generation == generation[sel].max())
        values = objective[last]
        out[int(k)] = float(values[np.argmin(np.abs(values - config.target))] if config.mode == "ga" else values[0])
    return out


def _penalty_dict(objective) -> dict | None:
    """The objective's uncertainty penalty for config.json (:class:`crmnet.design.oracle.Penalty`), or None."""
    from dataclasses import asdict

    penalty = getattr(objective, "penalty", None)
    return None if penalty is None else asdict(penalty)
