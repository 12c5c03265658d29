"""Evolution modes on toy models and on the simulator's ground truth; objectives combining models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from crmnet.design.evolve import EvolveConfig, evolve, evolve_to_file
from crmnet.design.oracle import ModelPredictor, Objective, SimulatorPredictor
from crmnet.errors import InputError
from design_toys import LinearToy, constructs


def _objective(seed=0, **more):
    return Objective({"A": ModelPredictor(LinearToy(seed)), **more})


def test_sswm_strictly_improves_to_the_optimum():
    model = LinearToy(0)
    obj = Objective({"A": ModelPredictor(model)})
    start = constructs(2, seed=5)
    gens = list(evolve(obj, start, EvolveConfig(mode="sswm", generations=300, window=(40, 50))))
    for lineage in (0, 1):
        values = [g.objective[list(g.lineage).index(lineage)] for g in gens if lineage in g.lineage]
        assert all(b > a for a, b in itertools.pairwise(values))
    # a linear model's optimum: the best base at every window position, reached in <= 10 steps
    w = model.base_weight()[:4]
    last = gens[-1].codes
    assert (last[:, 40:50] == w[:, 40:50].argmax(axis=0)).all()
    assert len(gens) <= 11
    assert (last[:, :40] == gens[0].codes[:, :40]).all() and (last[:, 50:] == gens[0].codes[:, 50:]).all()


def test_sswm_minimise_and_two_model_objective():
    obj = Objective({"hi": ModelPredictor(LinearToy(1)), "lo": ModelPredictor(LinearToy(2))}, "hi - 2*lo")
    gens = list(evolve(obj, constructs(1), EvolveConfig(mode="sswm", direction="min", generations=5)))
    values = [g.objective[0] for g in gens]
    assert len(values) == 6 and all(b < a for a, b in itertools.pairwise(values))
    combined = obj.combine(gens[-1].predictions)
    assert combined[0] == pytest.approx(gens[-1].predictions["hi"][0] - 2 * gens[-1].predictions["lo"][0], rel=1e-5)
    assert obj.value_range() == (-34.0, 17.0)
    with pytest.raises(InputError, match="names 'C'"):
        Objective({"A": None}, "A - C")
    with pytest.raises(InputError, match="only model names"):
        Objective({"A": None}, "A ** 2")
    with pytest.raises(InputError, match="--objective is needed"):
        Objective({"A": None, "B": None})


def test_drift_is_seeded_and_random():
    cfg = EvolveConfig(mode="drift", generations=6, population=3, seed=7)
    a = list(evolve(_objective(), constructs(2), cfg))
    b = list(evolve(_objective(), constructs(2), cfg))
    assert all((x.codes == y.codes).all() for x, y in zip(a, b))
    assert len(a) == 7 and len(a[-1].lineage) == 6
    changed = (a[-1].codes != a[0].codes).sum(axis=1)
    assert (changed <= 6).all() and (changed >= 1).all()
    assert (a[-1].codes[:, :17] == a[0].codes[:, :17]).all()  # flanks stay
    c = list(evolve(_objective(), constructs(2), cfg.replace(seed=8)))
    assert not (c[-1].codes == a[-1].codes).all()


def test_ga_reaches_target():
    obj = _objective(3)
    start = constructs(1, seed=9)
    lo = obj(*_codes(start))[0]
    target = float(lo + 4.0)
    cfg = EvolveConfig(mode="ga", population=40, generations=200, target=target, tolerance=0.1,
                       mutation_rate=0.02, seed=1)
    gens = list(evolve(obj, start, cfg))
    assert np.abs(gens[-1].objective - target).min() <= 0.1
    assert len(gens) < 201


def test_bad_settings():
    with pytest.raises(InputError, match="--population 0"):
        EvolveConfig(mode="ga", population=0, target=5)
    with pytest.raises(InputError, match="--target is needed"):
        EvolveConfig(mode="ga", population=10)
    with pytest.raises(InputError, match=r"--target 40 lies outside the objective's range \[0, 17\]"):
        list(evolve(_objective(), constructs(1), EvolveConfig(mode="ga", population=10, target=40)))


def test_sswm_on_the_simulator_raises_true_expression():
    obj = Objective({"truth": SimulatorPredictor()})
    gens = list(evolve(obj, constructs(2, seed=11), EvolveConfig(mode="sswm", generations=3)))
    values = np.array([g.objective for g in gens])
    assert (np.diff(values, axis=0) > 0).all()


def test_evolve_to_file(tmp_path):
    obj = _objective()
    res = evolve_to_file(obj, ["s1"], constructs(1), tmp_path / "ev", EvolveConfig(mode="sswm", generations=3),
                         progress=False)
    rows = [r.split("\t") for r in (tmp_path / "ev" / "trajectory.tsv").read_text().splitlines()]
    assert rows[0][:5] == ["start_id", "lineage", "generation", "individual", "sequence"]
    assert [r[2] for r in rows[1:]] == ["0", "1", "2", "3"] and rows[4][-2] == "3"
    assert rows[2][-1].count(";") == 0 and rows[4][-1].count(";") == 2
    assert (tmp_path / "ev" / "trajectory.png").is_file() and res["rows"] == 4


def _codes(seqs):
    from crmnet.design.oracle import encode_sequences

    return encode_sequences(seqs)
