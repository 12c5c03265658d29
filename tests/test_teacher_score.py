"""Scoring a student's attributions against a teacher's ISM (crmnet.interpret.teacher_score)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from crmnet.data.construct import FLANKS
from crmnet.data.encoding import Encoding
from crmnet.errors import InputError
from crmnet.interpret.attribution import AttributionConfig, Attributions, attribute
from crmnet.interpret.teacher_score import (
    METRICS,
    importance,
    masked_pearson,
    score_against_teacher,
    substitution_effects,
)

WIDTH = 110


def _sequences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), WIDTH)) for _ in range(n)]


def _maps(hyp: np.ndarray, sequences: list[str], method: str = "ism") -> Attributions:
    from crmnet.interpret.attribution import sequence_onehot

    n = len(sequences)
    return Attributions(sequence_onehot(sequences), hyp.astype(np.float32), np.full(n, WIDTH),
                        np.ones((n, WIDTH), dtype=bool), method)


class Linear(nn.Module):
    """f(x) = Σ w[c, j] x[c, j]: ISM is exact, the gradient is w, input × gradient is w at the observed base."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.encoding = Encoding(length=WIDTH, channels="ACGT")
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x):
        return (x * self.weight).sum(dim=(1, 2))


def test_substitution_effects_and_importance_by_hand():
    seq = ["A" * WIDTH]
    hyp = np.zeros((1, 4, WIDTH))
    hyp[0, :, 20] = [1.0, 3.0, -1.0, 5.0]  # observed A scores 1
    attr = _maps(hyp, seq)
    d = substitution_effects(attr)
    assert d[0, :, 20].tolist() == [0.0, 2.0, -2.0, 4.0]
    assert importance(attr, "observed")[0, 20] == pytest.approx(-1.0)  # 1 − mean(1, 3, −1, 5)
    assert importance(attr, "magnitude")[0, 20] == pytest.approx(8 / 3)
    with pytest.raises(ValueError, match="importance kind"):
        importance(attr, "both")


def _centred(hyp: np.ndarray) -> np.ndarray:
    """Centred over the four bases at each position, as a stored ISM is."""
    return hyp - hyp.mean(axis=1, keepdims=True)


def test_identical_maps_score_one():
    seqs = _sequences(6)
    teacher = _maps(_centred(np.random.default_rng(1).standard_normal((6, 4, WIDTH))), seqs)
    s = score_against_teacher(teacher, teacher, k=8)
    for name in METRICS:
        np.testing.assert_allclose(s.values[name], 1.0, atol=1e-9, err_msg=name)
    summary = s.summary()
    assert summary["n"] == 6 and summary["pearson_observed"]["mean"] == pytest.approx(1.0)
    assert summary["chance_topk_overlap"] == pytest.approx(8 / 80)


def test_common_offset_and_scale_do_not_matter():
    """A gradient's component common to the four bases, and a positive scale, leave every score at 1 but
    the displayed (uncentred) map's."""
    seqs = _sequences(4)
    hyp = _centred(np.random.default_rng(2).standard_normal((4, 4, WIDTH)))
    teacher = _maps(hyp, seqs)
    offset = 5.0 * np.random.default_rng(3).standard_normal((4, 1, WIDTH))
    s = score_against_teacher(_maps(3.0 * hyp + offset, seqs, "saliency"), teacher)
    for name in METRICS[1:]:
        np.testing.assert_allclose(s.values[name], 1.0, atol=1e-6, err_msg=name)
    assert (s.values["pearson_displayed"] < 0.8).all()


def test_shuffled_map_scores_chance():
    n = 400
    seqs = _sequences(n, seed=4)
    rng = np.random.default_rng(5)
    hyp = rng.standard_normal((n, 4, WIDTH))
    teacher = _maps(hyp, seqs)
    perm = hyp.copy()
    for i in range(n):
        perm[i] = hyp[i][:, rng.permutation(WIDTH)]
    summary = score_against_teacher(_maps(perm, seqs), teacher, k=10).summary()
    for name in ("pearson_displayed", "pearson_observed", "spearman_observed", "pearson_magnitude", "spearman_magnitude",
                 "pearson_substitutions"):
        assert abs(summary[name]["mean"]) < 0.02, name
    assert summary["topk_auroc"]["mean"] == pytest.approx(0.5, abs=0.02)
    assert summary["topk_sign_agreement"]["mean"] == pytest.approx(0.5, abs=0.03)
    assert summary["topk_overlap"]["mean"] == pytest.approx(summary["chance_topk_overlap"], abs=0.02)


def test_negated_map_is_anticorrelated_but_equally_important():
    seqs = _sequences(3)
    hyp = np.random.default_rng(6).standard_normal((3, 4, WIDTH))
    s = score_against_teacher(_maps(-hyp, seqs), _maps(hyp, seqs)).values
    np.testing.assert_allclose(s["pearson_observed"], -1.0, atol=1e-9)
    np.testing.assert_allclose(s["pearson_substitutions"], -1.0, atol=1e-9)
    np.testing.assert_allclose(s["topk_sign_agreement"], 0.0)
    np.testing.assert_allclose(s["pearson_magnitude"], 1.0, atol=1e-9)
    np.testing.assert_allclose(s["topk_auroc"], 1.0)


def test_linear_teacher_and_student_known_maps():
    """Linear models: the teacher's ISM is exactly its weights; a student with weights w_s scores what the
    weights' own correlation says, whichever attribution method reads it."""
    rng = np.random.default_rng(7)
    w_t = np.zeros((4, WIDTH))
    w_t[:, FLANKS[0]:WIDTH - FLANKS[1]] = rng.standard_normal((4, WIDTH - sum(FLANKS)))
    w_s = w_t.copy()
    w_s[:, 40:60] = 0.0  # the student misses 20 of 80 positions
    teacher, student = Linear(w_t), Linear(w_s)
    seqs = _sequences(5, seed=8)
    truth = attribute(teacher, seqs, AttributionConfig(method="ism"))
    # The teacher's ISM is exact: substitution effects are weight differences.
    x = truth.onehot
    expected = w_t[None] - (x * w_t[None]).sum(1, keepdims=True)
    region = slice(FLANKS[0], WIDTH - FLANKS[1])
    np.testing.assert_allclose(substitution_effects(truth)[:, :, region], expected[:, :, region], atol=1e-5)
    # The observed importance of the student is the teacher's with 20 positions set to 0.
    t_obs = importance(truth, "observed")[:, region]
    s_obs = np.where((np.arange(WIDTH)[region] >= 40) & (np.arange(WIDTH)[region] < 60), 0.0, t_obs)
    known = [np.corrcoef(a, b)[0, 1] for a, b in zip(s_obs, t_obs, strict=True)]
    for method in ("saliency", "ism"):
        s = score_against_teacher(attribute(student, seqs, AttributionConfig(method=method)), truth).values
        np.testing.assert_allclose(s["pearson_observed"], known, atol=1e-5, err_msg=method)
        assert (s["pearson_observed"] < 0.95).all() and (s["pearson_observed"] > 0.6).all()
        # Where the student is right its signs are the teacher's; its missed positions are never in its top k.
        assert (s["topk_sign_agreement"] >= 0.5).all()


def test_masked_pearson_constant_and_short_rows_are_nan():
    a = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    b = np.array([[2.0, 4.0, 7.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    mask = np.array([[True, True, True], [True, True, True], [True, False, False]])
    r = masked_pearson(a, b, mask)
    assert r[0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1])
    assert np.isnan(r[1]) and np.isnan(r[2])


def test_different_sequences_are_refused():
    hyp = np.zeros((2, 4, WIDTH))
    with pytest.raises(InputError, match="different sequences"):
        score_against_teacher(_maps(hyp, _sequences(2, 1)), _maps(hyp, _sequences(2, 2)))
    with pytest.raises(InputError, match="not of the same"):
        score_against_teacher(_maps(hyp[:1], _sequences(1, 1)), _maps(hyp, _sequences(2, 1)))
    with pytest.raises(ValueError, match="k="):
        score_against_teacher(_maps(hyp, _sequences(2, 1)), _maps(hyp, _sequences(2, 1)), k=80)
