"""DREAM-CNN, DREAM-RNN, DREAM-Attn: the organisers' parameter counts, their recipe, a few training steps on
real DREAM training lines (../shared/data/dream2022/demo_train.txt), and the one-cycle schedule."""

from __future__ import annotations

import pytest
import torch

from crmnet.models import build_model
from crmnet.models.checkpoint import load_checkpoint
from crmnet.training.dream import dream_config, dream_recipe
from crmnet.training.schedule import WarmupCosine

pytestmark = pytest.mark.usefixtures("one_thread")

# torchinfo totals printed by the organisers' DREAMNets_BuildModel_Train_and_Predict.ipynb
# (de-Boer-Lab/random-promoter-dream-challenge-2022 @ f7b2e19) for the three networks.
ORGANISERS = {"dream-cnn": 1_933_970, "dream-rnn": 4_130_578, "dream-attn": 4_539_410}
SMALL = {
    "dream-cnn": {"first_channels": 16, "core_sizes": (16, 8), "expand": 2},
    "dream-rnn": {"first_channels": 16, "lstm_units": 8, "core_channels": 16},
    "dream-attn": {"channels_attn": 16, "layers": 1, "heads": 2},
}


@pytest.mark.parametrize("name", list(ORGANISERS))
def test_parameter_counts_are_the_organisers(name):
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == ORGANISERS[name]
    x = torch.zeros(3, 4, 150)
    with torch.no_grad():
        pred = model.eval()(x)
    assert pred.shape == (3,) and ((pred >= 0) & (pred <= 17)).all()  # an expectation over bins 0..17


def test_recipe_is_the_organisers():
    r = dream_recipe("dream-attn")
    assert (r["optimizer"], r["weight_decay"], r["schedule"], r["lr_peak"]) == ("adamw", 0.01, "onecycle", 0.001)
    assert r["lr_start"] == pytest.approx(0.001 / 25) and r["warmup_epochs"] == pytest.approx(0.3 * 12)
    assert dream_recipe("dream-cnn")["lr_peak"] == 0.005
    with pytest.raises(ValueError, match="dream-cnn"):
        dream_recipe("legnet")


def test_onecycle_schedule_matches_torch():
    """The 'onecycle' schedule equals torch's OneCycleLR (two phases, cos) at every step."""
    steps, epochs = 10, 4
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.005, div_factor=25, steps_per_epoch=steps, epochs=epochs,
                                              pct_start=0.3, three_phase=False, cycle_momentum=False)
    ours = WarmupCosine(kind="onecycle", warmup_epochs=0.3 * epochs - 1 / steps, total_epochs=epochs - 1 / steps,
                        lr_start=0.005 / 25, lr_peak=0.005, lr_end=0.005 / 25 / 1e4)
    for step in range(steps * epochs):
        assert ours.at_step(step, steps) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        opt.step()
        ref.step()


@pytest.fixture(scope="module")
def store(shared, tmp_path_factory):
    from crmnet.data.store import prepare

    tmp = tmp_path_factory.mktemp("dream_store")
    lines = (shared / "data/dream2022/demo_train.txt").read_text().splitlines()[:400]
    (tmp / "train.txt").write_text("\n".join(lines) + "\n")
    return prepare([tmp / "train.txt"], tmp / "store", media=["chardonnay"], val_fraction=0.2, seed=0)


@pytest.mark.parametrize("name", list(SMALL))
def test_trains_a_few_steps_with_the_dream_recipe(name, store, tmp_path):
    from crmnet.training.run import fit

    torch.manual_seed(0)
    before = {k: v.clone() for k, v in build_model(name, **SMALL[name]).state_dict().items()}
    cfg = dream_config(name, str(store.path), max_epochs=1, overrides=SMALL[name], batch_size=32, max_steps=4,
                       log_every_n_steps=1, save_every_n_steps=2, progress=False, seed=0)
    result = fit(cfg, tmp_path / "run")
    assert result.steps == 4
    model = load_checkpoint(tmp_path / "run" / "last.ckpt" if (tmp_path / "run" / "last.ckpt").exists()
                            else tmp_path / "run" / "best.ckpt")
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after and before[k].is_floating_point())
    rows = (tmp_path / "run" / "logs" / "steps.csv").read_text().splitlines()
    assert len(rows) >= 4 and "nan" not in "".join(rows).lower()


@pytest.mark.parametrize("name", list(ORGANISERS))
def test_recipe_files_are_the_recipe(name):
    import json
    from pathlib import Path

    from crmnet.training.config import TrainConfig

    path = Path(__file__).parents[1] / "configs" / f"dream2022_{name.split('-')[1]}.json"
    stage = json.loads(path.read_text())["stages"][0]
    assert stage["config"] == {**dream_recipe(name), "store": "stores/dream2022", "seed": 0}
    assert TrainConfig.from_dict(stage["config"]).schedule == "onecycle"
