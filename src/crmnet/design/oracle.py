"""Predictors and objectives: what the design analyses ask "how much does this sequence express?".

Every analysis in :mod:`crmnet.design` works on sequences held as ``uint8`` codes in *sequence space*:
``(B, W)`` codes ``A0 C1 G2 T3 N4``, left-aligned and padded with N, with the true lengths beside them.
A **predictor** maps such a batch to one value per sequence:

* :class:`ModelPredictor` wraps any registered model: it re-lays the codes in the model's own
  :class:`~crmnet.data.encoding.Encoding` on the device (:func:`~crmnet.data.encoding.relayout`), one-hots
  them there and runs the model in batches, so mutants generated on the device never visit the host.
* :class:`SimulatorPredictor` is the ground truth: the simulator's noise-free expression
  (:func:`crmnet.data.simulate.noise_free_expression`).

An :class:`Objective` combines named predictors with an arithmetic expression (``"complex - defined"``,
``"2*A - B"``): numbers, names, ``+ - *`` and parentheses; its value range follows by interval arithmetic
from each predictor's range (by default the measured expression range of the Vaishnav et al. assay).

**Uncertainty** (:class:`Penalty`, for every design command): so that design does not exploit one model's
errors, an objective can be made pessimistic. ``kind="spread"``: objective − λ·u, with ``u`` the
objective's spread propagated from each predictor's ensemble spread (``u² = Σᵢ (f(v + σᵢ eᵢ) − f(v))²``,
exact for linear objectives; a single model has spread 0); ``kind="bound"``: the objective's lower
bound by interval arithmetic over each predictor's conformal interval at ``level`` (each model must be
calibrated, ``crmnet calibrate``). With ``direction="min"`` the pessimistic side is the other one
(objective + λ·u, the upper bound). :meth:`Objective.predict` then returns :class:`Predictions`, which
carry the spreads and bounds to :meth:`Objective.combine`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crmnet.data.encoding import Encoding, encode, without_invalid_hint
from crmnet.errors import InputError

# Expression values measured in Vaishnav et al.'s assay lie in [0, 17] (the simulator clips to it too).
EXPRESSION_RANGE = (0.0, 17.0)
#: sequences per forward pass of a plain module on a CPU, whatever the batch size (see ModelPredictor.members)
CPU_CHUNK = 1024
MAX_CONSTANT = 1e12  # an objective constant beyond this is a typo (1e309 would silently become inf)


def sequence_encoding(width: int) -> Encoding:
    """The sequence-space layout of a batch ``width`` wide: left-aligned, N-padded, all five codes."""
    return Encoding(length=width, pad="end", truncate="end", channels="ACGTN")


def encode_sequences(sequences: Sequence[str], source: str | None = None,
                     lines: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sequences → sequence-space codes.

    Parameters
    ----------
    sequences : list of str
        DNA (either case; other characters are an :class:`InputError`).
    source, lines : where the sequences came from, to name ``FILE:LINE`` on error (default line = index + 1).

    Returns
    -------
    codes : (n, max length) uint8
    lengths : (n,) int64
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if len(sequences) == 0:
        return np.zeros((0, 1), np.uint8), lengths
    if (lengths == 0).any():
        at = int(np.flatnonzero(lengths == 0)[0])
        raise InputError(source, "empty sequence", line=None if lines is None else int(lines[at]))
    try:
        codes, _ = encode(list(sequences), sequence_encoding(int(lengths.max())), source=source, first_line=0)
    except InputError as exc:
        line = exc.line if lines is None else int(lines[exc.line])
        # design commands have no --invalid option: drop the hint that names it
        raise InputError(source, without_invalid_hint(exc).problem, line=line + (lines is None)) from None
    return codes, lengths


class ModelPredictor:
    """A model as a predictor over sequence-space codes (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        Any registered model (``model.encoding`` set); put in eval mode and moved to ``device``.
    batch_size : int
        Sequences per forward pass.
    device : torch device or None
        Default: where the model's parameters are.
    value_range : (float, float)
        The model's output range, used to check targets (default :data:`EXPRESSION_RANGE`).
    """

    def __init__(self, model, batch_size: int = 4096, device=None, value_range=EXPRESSION_RANGE):
        from crmnet.evaluation.predict import device_of

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.device = device_of(model, device)
        model.to(self.device).eval()
        self.batch_size = batch_size
        self.value_range = tuple(float(v) for v in value_range)

    def runner(self):
        """The module that runs: the exact inference rewrite on a CPU where it pays, else the model."""
        from crmnet.models.fastpath import optimize_for_inference, worthwhile

        if getattr(self.device, "type", str(self.device)) == "cpu" and worthwhile(self.model):
            return optimize_for_inference(self.model)
        return self.model

    def onehot(self, codes, lengths, channels_last: bool = False):
        """Sequence-space codes (B, W) and lengths (B,) → the model's one-hot input (B, C, L) on the device.

        With ``channels_last`` the (B, C, L) tensor is a view of (B, L, C) memory, which a channels-last
        runner (``run.CHANNELS_LAST``) reads without a copy (:func:`~crmnet.data.encoding.onehot`).
        """
        import torch

        from crmnet.data.encoding import onehot, relayout

        codes = torch.as_tensor(codes).to(self.device)
        lengths = torch.as_tensor(lengths).to(self.device)
        laid = relayout(codes, lengths, sequence_encoding(codes.shape[1]), self.model.encoding)
        return onehot(laid, self.model.encoding, channels_last=channels_last)

    def members(self, codes, lengths) -> np.ndarray:
        """Each ensemble member's prediction (B, K) float32 of codes (B, W) uint8 with lengths (B,) (K = 1 for one model)."""
        import torch

        from crmnet.models.ensemble import member_outputs, n_members

        run = self.runner()
        # On a CPU a plain module's activations fall out of the caches beyond ~1,000 sequences (crmnet-tiny:
        # 9,300 seq/s per core at 1,024, 7,700 at 4,096); the rewrites chunk internally, each as suits it.
        plain_cpu = self.device.type == "cpu" and run is self.model
        step = min(self.batch_size, CPU_CHUNK) if plain_cpu else self.batch_size
        out = np.empty((len(codes), n_members(self.model)), dtype=np.float32)
        channels_last = getattr(run, "CHANNELS_LAST", False)
        with torch.inference_mode():
            for s in range(0, len(codes), step):
                x = self.onehot(codes[s : s + step], lengths[s : s + step], channels_last)
                out[s : s + len(x)] = member_outputs(run, x).float().cpu().numpy()
        return out

    def __call__(self, codes, lengths) -> np.ndarray:
        """Predict codes (B, W) uint8 with lengths (B,) (numpy or torch, any device) → (B,) float32 (an ensemble's mean)."""
        return self.members(codes, lengths).mean(axis=1)

    def variants(self, codes, lengths, row, variants) -> tuple[np.ndarray, np.ndarray]:
        """Predict the references ``codes`` (N, W) and their ``variants`` (M, W) (variant m of ``codes[row[m]]``).

        Same values as ``self(codes, lengths)`` and ``self(variants, lengths[row])``. Models with a variant
        path (the DeepATT rewrite) reuse each reference's convolutional prefix; the others predict the
        references in the variants' batch, which saves a forward pass of a few sequences.

        Returns
        -------
        reference : (N,) float32
        variant : (M,) float32
        """
        import torch

        run = self.runner()
        row = torch.as_tensor(row).to(self.device)
        lengths = torch.as_tensor(lengths).to(self.device)
        codes = torch.as_tensor(codes).to(self.device)
        if not hasattr(run, "mutants"):
            both = self(torch.cat([codes, torch.as_tensor(variants).to(self.device)]),
                        torch.cat([lengths, lengths.index_select(0, row)]))
            return both[: len(codes)].copy(), both[len(codes) :]
        out = np.empty(len(row), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(row), self.batch_size):
                rows = row[s : s + self.batch_size]
                used, local = torch.unique(rows, return_inverse=True)
                reference = self.onehot(codes.index_select(0, used), lengths.index_select(0, used))
                x = self.onehot(variants[s : s + self.batch_size], lengths.index_select(0, rows))
                out[s : s + len(x)] = run.mutants(reference, local, x).float().cpu().numpy()
        return self(codes, lengths), out

    def with_uncertainty(self, codes, lengths, level: float | None = None) -> tuple[np.ndarray, np.ndarray, tuple | None]:
        """Prediction (B,), members' spread (B,) and, at ``level``, the conformal (lower, upper) or None.

        A ``level`` needs a calibrated model (:mod:`crmnet.evaluation.conformal`).
        """
        from crmnet.evaluation.conformal import mean_and_spread, require_calibration

        pred, spread = mean_and_spread(self.members(codes, lengths))
        if level is None:
            return pred, spread, None
        return pred, spread, require_calibration(self.model, None).interval(pred, level, spread)


class SimulatorPredictor:
    """The simulator's noise-free expression as a predictor (ground truth; 110-nt constructs only).

    Parameters
    ----------
    config : SimulatorConfig, its dict, a truth dict, or None for the defaults
    """

    def __init__(self, config=None):
        from crmnet.data.simulate import SimulatorConfig

        if isinstance(config, dict):
            config = SimulatorConfig.from_dict(config.get("config", config))
        self.config = config or SimulatorConfig()
        self.value_range = tuple(self.config.expression_range)
        self.device = "cpu"

    def __call__(self, codes, lengths) -> np.ndarray:
        """Map codes (B, W ≥ 110) uint8, lengths (B,) all 110 → noise-free expression (B,) float32."""
        from crmnet.data.simulate import noise_free_expression

        codes = np.asarray(codes.cpu() if hasattr(codes, "cpu") else codes)
        lengths = np.asarray(lengths.cpu() if hasattr(lengths, "cpu") else lengths)
        if len(codes) and (lengths != 110).any():
            raise ValueError("the simulator scores 110-nt constructs only")
        return noise_free_expression(np.ascontiguousarray(codes[:, :110]), self.config).astype(np.float32)


_OPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply}


@dataclass(frozen=True)
class Penalty:
    """How an objective accounts for uncertainty (module docstring).

    Parameters
    ----------
    kind : ``"spread"`` (objective ∓ weight · propagated spread) or ``"bound"`` (the conformal bound)
    weight : λ of ``"spread"`` (≥ 0)
    level : the interval level of ``"bound"``, in (0, 1)
    direction : ``"max"`` (penalise downwards: lower bound) or ``"min"`` (upwards: upper bound)
    """

    kind: str = "spread"
    weight: float = 1.0
    level: float = 0.9
    direction: str = "max"

    def __post_init__(self) -> None:
        from crmnet.evaluation.conformal import check_level

        if self.kind not in ("spread", "bound"):
            raise InputError(None, f"--penalty must be spread or bound, got {self.kind!r}")
        if not self.weight >= 0:
            raise InputError(None, f"--penalty-weight must be 0 or more, got {self.weight}")
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction must be max or min, got {self.direction!r}")
        check_level(self.level, "--penalty-level")


class Predictions(dict):
    """Predictor name → values (B,), with each predictor's ``spread`` and conformal ``bounds`` when penalised."""

    spread: dict[str, np.ndarray]
    bounds: dict[str, tuple[np.ndarray, np.ndarray]]


class Objective:
    """Named predictors combined by an arithmetic expression (see the module docstring).

    Parameters
    ----------
    predictors : mapping name → predictor
    expression : str or None
        Over the names; default: the only predictor's name (an error with several).
    penalty : Penalty or None
        Make the objective pessimistic about the models' uncertainty (module docstring).
    """

    def __init__(self, predictors: Mapping[str, object], expression: str | None = None,
                 penalty: Penalty | None = None):
        if not predictors:
            raise ValueError("an objective needs at least one predictor")
        self.predictors = dict(predictors)
        self.penalty = penalty
        self.device = getattr(next(iter(self.predictors.values())), "device", "cpu")
        if expression is None:
            if len(self.predictors) > 1:
                raise InputError(None, f"--objective is needed to combine {len(self.predictors)} models "
                                       f"({', '.join(self.predictors)}), e.g. \"{' - '.join(self.predictors)}\"")
            expression = next(iter(self.predictors))
        self.expression = expression
        try:
            self._tree = ast.parse(expression, mode="eval").body
        except SyntaxError:
            raise InputError(None, f"--objective {expression!r} is not an arithmetic expression") from None
        self._check(self._tree)
        lo, hi = self.value_range()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(None, f"--objective {self.expression!r} can reach {lo:g}..{hi:g}: beyond a finite "
                                   "number; use smaller constants")

    def _check(self, node) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self._check(node.operand)
        elif isinstance(node, ast.Name):
            if node.id not in self.predictors:
                raise InputError(None, f"--objective {self.expression!r} names {node.id!r}, which is not a model "
                                       f"(models: {', '.join(self.predictors)})")
        elif not (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))):
            raise InputError(None, f"--objective {self.expression!r}: only model names, numbers, + - * and "
                                   "parentheses are allowed")
        elif not math.isfinite(node.value) or abs(node.value) > MAX_CONSTANT:
            raise InputError(None, f"--objective {self.expression!r}: the number {node.value:g} is beyond "
                                   f"±{MAX_CONSTANT:g}")

    def _eval(self, node, values: Mapping):
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](self._eval(node.left, values), self._eval(node.right, values))
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, values)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Name):
            return values[node.id]
        return node.value

    def predict(self, codes, lengths) -> dict[str, np.ndarray]:
        """Each predictor's values: name → (B,) float32 (:class:`Predictions` with spreads when penalised)."""
        if self.penalty is None:
            return {name: p(codes, lengths) for name, p in self.predictors.items()}
        out = Predictions()
        out.spread, out.bounds = {}, {}
        level = self.penalty.level if self.penalty.kind == "bound" else None
        for name, p in self.predictors.items():
            if hasattr(p, "with_uncertainty"):
                value, out.spread[name], bounds = p.with_uncertainty(codes, lengths, level)
            elif level is not None:
                raise InputError(None, f"--penalty bound needs a calibrated model; {name!r} is not a model")
            else:  # an exact predictor (the simulator): no spread
                value = p(codes, lengths)
                out.spread[name], bounds = np.zeros(len(value)), None
            out[name] = np.asarray(value, dtype=np.float32)
            if bounds is not None:
                out.bounds[name] = bounds
        return out

    def _raw(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        out = self._eval(self._tree, {k: np.asarray(v, dtype=np.float64) for k, v in values.items()})
        n = len(next(iter(values.values())))
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,)).copy()

    def combine(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """The objective (B,) float64 from each predictor's values (penalised: from :class:`Predictions`)."""
        raw = self._raw(values)
        if self.penalty is None:
            return raw
        sign = 1.0 if self.penalty.direction == "max" else -1.0
        if self.penalty.kind == "bound":
            lo, hi = self._bounds(values.bounds)
            return np.broadcast_to(lo if sign > 0 else hi, raw.shape).astype(np.float64)
        u2 = np.zeros_like(raw)
        for name, sigma in values.spread.items():
            shifted = {**values, name: np.asarray(values[name], np.float64) + sigma}
            u2 += (self._raw(shifted) - raw) ** 2
        return raw - sign * self.penalty.weight * np.sqrt(u2)

    def __call__(self, codes, lengths) -> np.ndarray:
        """The objective of sequence-space codes (B, W) → (B,) float64."""
        return self.combine(self.predict(codes, lengths))

    def value_range(self) -> tuple[float, float]:
        """(lo, hi) the objective can take, by interval arithmetic over the predictors' ranges."""
        ranges = {k: tuple(getattr(p, "value_range", EXPRESSION_RANGE)) for k, p in self.predictors.items()}
        lo, hi = self._bounds(ranges)
        return float(lo), float(hi)

    def _bounds(self, ranges: Mapping[str, tuple]) -> tuple:
        """(lo, hi) of the expression by interval arithmetic over name → (lo, hi) (numbers or (B,) arrays)."""

        def walk(node) -> tuple:
            if isinstance(node, ast.BinOp):
                (a, b), (c, d) = walk(node.left), walk(node.right)
                if isinstance(node.op, ast.Add):
                    return a + c, b + d
                if isinstance(node.op, ast.Sub):
                    return a - d, b - c
                products = (a * c, a * d, b * c, b * d)
                return np.minimum.reduce(products), np.maximum.reduce(products)
            if isinstance(node, ast.UnaryOp):
                lo, hi = walk(node.operand)
                return (-hi, -lo) if isinstance(node.op, ast.USub) else (lo, hi)
            if isinstance(node, ast.Name):
                return ranges[node.id]
            return float(node.value), float(node.value)

        return walk(self._tree)
