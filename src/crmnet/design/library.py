"""Graded promoter libraries: designs at chosen expression levels that obey the lab's constraints.

:func:`design_library` makes ``per_level`` designs for each target level, by constrained steepest descent
towards the level: every lineage starts at a sequence that passes every check of
:class:`~crmnet.design.constraints.Constraints` — a start sequence the user gives, or a random promoter
with the real flanks and the measured composition of the assay's random regions, chosen from ``pool``
such promoters as the ones whose cost for the level is lowest (screen first, then refine: the fewer
substitutions a design needs, the less room the search has to exploit a model's errors; measured in
docs/design-libraries.md) — and at each step moves to its best *valid* single mutant, the one with the
lowest cost

    cost = |value − level| + disagreement · spread,

where ``value`` is the objective (one model, or an expression over several as in ``crmnet evolve``) or,
with several models and no expression, their mean, and ``spread`` the models' standard deviation (0 for
one model): with an ensemble the search is pushed to sequences on which the models agree. A lineage stops
when its cost is within ``tolerance`` or at a local optimum (no valid mutant lowers it) or after
``max_steps``. Mutants at protected positions are never made, and mutants that break a check are never
scored. There are ``oversample`` lineages per wanted design; per level the ``per_level`` lowest-cost final
sequences at least ``min_distance`` apart (from each other and from every other level's designs) are kept.

Why this search and not gradients (e.g. Ledidi): the lab's constraints are discrete and hard (a
forbidden site, a homopolymer, an edit budget), which a relaxed one-hot cannot promise and which a walk
over valid single mutants keeps by construction; it needs only predictions, so it works with every
registered model, ensembles, objective expressions and the non-differentiable simulator; and a level
within a few units of a random promoter is a handful of substitutions away (see docs/design-libraries.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crmnet.config import Config
from crmnet.design.constraints import ConstraintConfig, Constraints, pick_distinct
from crmnet.design.oracle import EXPRESSION_RANGE, Objective
from crmnet.errors import InputError


@dataclass
class DesignConfig(Config):
    """Settings of :func:`design_library` (see the module docstring); ``window`` 0-based half-open or None."""

    levels: tuple[float, ...] = (6.0, 9.0, 12.0, 15.0)
    per_level: int = 3
    seed: int = 0
    tolerance: float = 0.1
    max_steps: int = 60
    oversample: int = 2
    pool: int = 1000
    disagreement: float = 1.0
    window: tuple[int, int] | None = None
    constraints: ConstraintConfig = field(default_factory=ConstraintConfig)

    def __post_init__(self) -> None:
        if isinstance(self.constraints, dict):
            self.constraints = ConstraintConfig.from_dict(self.constraints)
        checks = [(len(self.levels) >= 1, "--levels", "needs at least one level"),
                  (all(math.isfinite(v) for v in self.levels), "--levels", "must be finite numbers"),
                  (self.per_level >= 1, "--per-level", "must be at least 1"),
                  (self.tolerance > 0, "--tolerance", "must be positive"),
                  (self.max_steps >= 1, "--max-steps", "must be at least 1"),
                  (self.oversample >= 1, "--oversample", "must be at least 1"),
                  (self.pool >= 0, "--pool", "must be 0 or more"),
                  (self.disagreement >= 0, "--disagreement", "must be 0 or more")]
        for ok, option, problem in checks:
            if not ok:
                raise InputError(None, f"{option} {getattr(self, option[2:].replace('-', '_'))!r} {problem}")


class LibraryScorer:
    """Value and disagreement of sequences under one or several predictors.

    Parameters
    ----------
    predictors : mapping name → predictor (:mod:`crmnet.design.oracle`)
    expression : str or None
        An objective over the names (as ``crmnet evolve --objective``); None with several predictors: their mean.
    """

    def __init__(self, predictors: Mapping[str, object], expression: str | None = None):
        self.names = list(predictors)
        self.ensemble = expression is None and len(self.names) > 1
        # an ensemble's mean is taken here; the sum only lets the Objective hold and run the predictors
        self.objective = Objective(predictors, " + ".join(self.names) if self.ensemble else expression)
        self.expression = " | ".join(self.names) if self.ensemble else self.objective.expression

    def __call__(self, codes, lengths) -> tuple[dict, np.ndarray, np.ndarray]:
        """Score codes (B, W) → (name → (B,) predictions, value (B,) float64, spread (B,) float64)."""
        preds = self.objective.predict(codes, lengths)
        if not self.ensemble:
            return preds, self.objective.combine(preds), np.zeros(len(codes))
        stack = np.stack([np.asarray(preds[n], np.float64) for n in self.names])
        return preds, stack.mean(0), stack.std(0)

    def value_range(self) -> tuple[float, float]:
        """The range a value can take (an ensemble: the narrowest of its members' ranges)."""
        if not self.ensemble:
            return self.objective.value_range()
        ranges = [getattr(p, "value_range", EXPRESSION_RANGE) for p in self.objective.predictors.values()]
        return max(r[0] for r in ranges), min(r[1] for r in ranges)


@dataclass
class Library:
    """Designs of :func:`design_library`, one row each (level order, best first within a level).

    codes (n, W) uint8; lengths (n,); windows (n, 2); start (n, W) the lineage's start codes; start_index (n,)
    which user start (-1: random); target (n,); predictions name → (n,); value (n,); spread (n,);
    steps (n,) substitutions made; designs_tried: lineages run.
    """

    codes: np.ndarray
    lengths: np.ndarray
    windows: np.ndarray
    start: np.ndarray
    start_index: np.ndarray
    target: np.ndarray
    predictions: dict
    value: np.ndarray
    spread: np.ndarray
    steps: np.ndarray
    designs_tried: int

    def __len__(self) -> int:
        return len(self.codes)


def random_starts(rng: np.random.Generator, n: int, constraints: Constraints, window: tuple[int, int] | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random promoters (real flanks, the assay's composition) that pass every check.

    Returns
    -------
    codes (n, 110) uint8, lengths (n,), windows (n, 2)
    """
    from crmnet.data.calibrated import CalibratedConfig, random_variable_regions, with_flanks
    from crmnet.design.mutagenesis import resolve_windows

    cfg = CalibratedConfig()
    kept = []
    for _ in range(50):
        codes = with_flanks(random_variable_regions(rng, max(64, 4 * n), cfg.composition, cfg.composition_spread))
        lengths = np.full(len(codes), codes.shape[1], np.int64)
        windows = resolve_windows(codes, lengths, window)
        if not kept:
            constraints.check_fixed(codes[:1], windows[:1])
        kept.extend(codes[constraints.valid(codes, windows)])
        if len(kept) >= n:
            codes = np.stack(kept[:n])
            return codes, lengths[:n], windows[:n]
    raise InputError(None, "random promoters of the assay's composition hardly ever pass the constraints "
                           f"({', '.join(constraints.config.active())}): loosen them or give --start sequences")


def _diversify(rng, codes, windows, start, constraints: Constraints, k: int) -> np.ndarray:
    """``k`` random valid substitutions per row (rows whose proposal breaks a check stay as they were)."""
    mutable = constraints.mutable(windows, codes.shape[1])
    out = codes.copy()
    for _ in range(k):
        pos = np.argmax(rng.random(mutable.shape) * mutable, axis=1)
        proposal = out.copy()
        rows = np.arange(len(out))
        proposal[rows, pos] = (np.minimum(out[rows, pos], 3) + rng.integers(1, 4, len(out))) % 4
        ok = constraints.valid(proposal, windows, start)
        out[ok] = proposal[ok]
    return out


def _step(scorer, constraints, codes, lengths, windows, start, target, cost, disagreement):
    """One steepest-descent step of every row; returns (moved (B,) bool, new cost (B,))."""
    import torch

    from crmnet.design.mutagenesis import single_mutants

    row, pos, _, mutants = single_mutants(torch.as_tensor(codes), torch.as_tensor(windows))
    row, pos, mutants = row.numpy(), pos.numpy(), mutants.numpy()
    keep = constraints.mutable(windows, codes.shape[1])[row, pos]
    keep[keep] = constraints.valid(mutants[keep], windows[row[keep]], start[row[keep]])
    row, pos, mutants = row[keep], pos[keep], mutants[keep]
    moved, new_cost = np.zeros(len(codes), bool), cost.copy()
    if not len(row):
        return moved, new_cost
    _, value, spread = scorer(mutants, lengths[row])
    c = np.abs(value - target[row]) + disagreement * spread
    best = np.full(len(codes), np.inf)
    np.minimum.at(best, row, c)
    for r in np.flatnonzero(best < cost):
        k = np.flatnonzero((row == r) & (c == best[r]))[0]  # ties: the lowest position and base
        codes[r] = mutants[k]
        moved[r], new_cost[r] = True, best[r]
    return moved, new_cost


def screened_starts(scorer, config, constraints, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random starts per level: of ``config.pool`` random valid promoters, the lowest-cost distinct ones.

    Returns
    -------
    codes (levels · per_level · oversample, 110) uint8 in level order, lengths, windows
    """
    n_per = config.per_level * config.oversample
    n = max(config.pool, len(config.levels) * n_per)
    codes, lengths, windows = random_starts(rng, n, constraints, config.window)
    if config.pool == 0:
        return codes, lengths, windows
    _, value, spread = scorer(codes, lengths)
    picked: list[int] = []
    for level in config.levels:
        order = np.argsort(np.abs(value - level) + config.disagreement * spread, kind="stable")
        picked += pick_distinct(codes, order, n_per, max(1, config.constraints.min_distance),
                                codes[picked] if picked else None)
    if len(picked) < len(config.levels) * n_per:
        raise InputError(None, f"--pool {config.pool}: too few random promoters at --min-distance "
                               f"{config.constraints.min_distance} from each other; give a larger pool")
    return codes[picked], lengths[picked], windows[picked]


def _lineages(scorer, config, constraints, rng, starts):
    """Codes, lengths, windows, start index, target and start codes (before diversifying) of every lineage."""
    from crmnet.design.mutagenesis import resolve_windows

    levels, n_per = np.asarray(config.levels, np.float64), config.per_level * config.oversample
    if starts is None:
        codes, lengths, windows = screened_starts(scorer, config, constraints, rng)
        return codes, lengths, windows, np.full(len(codes), -1), np.repeat(levels, n_per), codes.copy()
    codes, lengths = starts
    windows = resolve_windows(codes, lengths, config.window)
    pick = np.repeat(np.arange(len(codes)), len(levels) * n_per)  # start s, level l, copy c
    codes, lengths, windows = codes[pick], lengths[pick], windows[pick]
    start = codes.copy()
    copy = np.tile(np.arange(n_per), len(levels) * (len(pick) // (len(levels) * n_per)))
    target = np.tile(np.repeat(levels, n_per), len(pick) // (len(levels) * n_per))
    budget = config.constraints.max_edits
    k = min(max(1, config.constraints.min_distance), budget if budget is not None else 10**9)
    if k > 0 and (copy > 0).any():  # copies beyond the first begin elsewhere, so the designs differ
        codes[copy > 0] = _diversify(rng, codes[copy > 0], windows[copy > 0], start[copy > 0], constraints, k)
    return codes, lengths, windows, pick, target, start


def design_library(scorer: LibraryScorer, config: DesignConfig, starts: tuple[np.ndarray, np.ndarray] | None = None,
                   progress=None) -> Library:
    """Design ``config.per_level`` sequences per level of ``config.levels`` (see the module docstring).

    Parameters
    ----------
    scorer : LibraryScorer
    config : DesignConfig
    starts : (codes (S, W) uint8, lengths (S,)) or None
        Start sequences, each checked (:meth:`Constraints.check_starts` by the caller); every one gets
        ``per_level`` designs per level. None: random promoters.
    progress : callable(step, max_steps, message) or None

    Returns
    -------
    Library
        Level by level, at most ``per_level`` designs per level and start (fewer only when
        ``min_distance`` leaves no more).
    """
    constraints = Constraints(config.constraints)
    lo, hi = scorer.value_range()
    for level in config.levels:
        if not lo <= level <= hi:
            raise InputError(None, f"--levels {level:g} lies outside the objective's range [{lo:g}, {hi:g}]")
    rng = np.random.default_rng(config.seed)
    codes, lengths, windows, start_index, target, start = _lineages(scorer, config, constraints, rng, starts)
    _, value, spread = scorer(codes, lengths)
    cost = np.abs(value - target) + config.disagreement * spread
    steps = np.zeros(len(codes), np.int64)
    active = cost > config.tolerance
    for s in range(config.max_steps):
        if progress:
            progress(s, config.max_steps, f"step {s + 1}: {int(active.sum())} of {len(codes)} lineages moving")
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        sub = codes[rows]
        moved, new_cost = _step(scorer, constraints, sub, lengths[rows], windows[rows], start[rows], target[rows],
                                cost[rows], config.disagreement)
        codes[rows], cost[rows] = sub, new_cost
        steps[rows] += moved
        active[rows] = moved & (new_cost > config.tolerance)
    preds, value, spread = scorer(codes, lengths)
    cost = np.abs(value - target) + config.disagreement * spread
    keep = _select(codes, cost, target, start_index, config)
    return Library(codes[keep], lengths[keep], windows[keep], start[keep], start_index[keep], target[keep],
                   {k: np.asarray(v)[keep] for k, v in preds.items()}, value[keep], spread[keep], steps[keep],
                   len(codes))


def _select(codes, cost, target, start_index, config) -> np.ndarray:
    """Rows kept: per level and start, the ``per_level`` lowest-cost designs ``min_distance`` apart."""
    chosen: list[int] = []
    for s in np.unique(start_index):
        for level in config.levels:
            rows = np.flatnonzero((target == level) & (start_index == s))
            order = rows[np.argsort(cost[rows], kind="stable")]
            picked = pick_distinct(codes, order, config.per_level, config.constraints.min_distance,
                                   codes[chosen] if chosen else None)
            chosen.extend(picked)
    return np.asarray(chosen, np.int64)


def design_ids(library: Library, start_ids: Sequence[str] | None = None) -> list[str]:
    """``level12_1``-style identifiers (prefixed ``START_`` with user starts), 1-based within a level."""
    out, seen = [], {}
    for s, t in zip(library.start_index.tolist(), library.target.tolist()):
        key = (s, t)
        seen[key] = seen.get(key, 0) + 1
        prefix = f"{start_ids[s]}_" if s >= 0 and start_ids is not None else ""
        out.append(f"{prefix}level{t:g}_{seen[key]}")
    return out
