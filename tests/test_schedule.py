"""The learning-rate schedules, checked by value against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from crmnet.training.schedule import WarmupCosine


def test_paper_schedule_by_epoch():
    s = WarmupCosine(kind="paper", warmup_epochs=10, total_epochs=50)
    expected = {
        0: 1e-4,  # warm-up starts at lr_start
        5: 5.5e-4,  # half-way up the line
        10: 1e-3,  # peak at the end of the warm-up
        30: 5.5e-4,  # half-way down the cosine: (1e-3 + 1e-4) / 2
        20: 1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 0.25)),
        50: 1e-4,  # cosine ends at lr_end
        60: 1e-4,  # and stays there past the planned end
    }
    for epoch, lr in expected.items():
        assert s.at_epoch(epoch) == pytest.approx(lr, rel=1e-12), epoch


def test_code_variant_is_flat_after_warmup():
    s = WarmupCosine(kind="code", warmup_epochs=10, total_epochs=50)
    assert s.at_epoch(0) == pytest.approx(1e-4)
    assert s.at_epoch(5) == pytest.approx(5.5e-4)
    for epoch in (10, 11, 30, 49, 50):
        assert s.at_epoch(epoch) == pytest.approx(1e-3)


@pytest.mark.parametrize("kind", ["paper", "code"])
def test_scaled_by_world_size(kind):
    one = WarmupCosine(kind=kind)
    eight = WarmupCosine(kind=kind, world_size=8)
    for epoch in (0, 3.5, 10, 27.25, 50):
        assert eight.at_epoch(epoch) == pytest.approx(8 * one.at_epoch(epoch), rel=1e-12)
    assert eight.at_epoch(10) == pytest.approx(8e-3)


def test_per_step_and_per_epoch_granularity():
    step = WarmupCosine(warmup_epochs=10, total_epochs=50, granularity="step")
    epoch = WarmupCosine(warmup_epochs=10, total_epochs=50, granularity="epoch")
    # 4 steps per epoch: step 2 is epoch 0.5, step 42 is epoch 10.5 (just past the peak).
    assert step.at_step(2, 4) == pytest.approx(1e-4 + 9e-4 * 0.05)
    assert step.at_step(42, 4) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 0.5 / 40)))
    # per epoch: every step of an epoch gets the rate at the epoch's start.
    assert [epoch.at_step(k, 4) for k in range(4)] == [pytest.approx(1e-4)] * 4
    assert epoch.at_step(4, 4) == pytest.approx(1e-4 + 9e-5)
    assert epoch.at_step(43, 4) == pytest.approx(1e-3)


def test_no_warmup_and_warmup_longer_than_run():
    s = WarmupCosine(warmup_epochs=0, total_epochs=4)
    assert s.at_epoch(0) == pytest.approx(1e-3)
    assert s.at_epoch(2) == pytest.approx(5.5e-4)
    short = WarmupCosine(warmup_epochs=10, total_epochs=5)
    assert short.at_epoch(4) == pytest.approx(1e-4 + 9e-4 * 0.4)
    assert short.at_epoch(10) == pytest.approx(1e-4)


def test_apply_sets_every_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": params[:1]}, {"params": params[1:]}], lr=123.0)
    lr = WarmupCosine(world_size=2).apply(opt, step=5, steps_per_epoch=1)
    assert lr == pytest.approx(2 * 5.5e-4)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(lr)] * 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "cosine"},
        {"granularity": "batch"},
        {"world_size": 0},
        {"warmup_epochs": -1},
        {"total_epochs": 0},
        {"lr_peak": -1.0},
    ],
)
def test_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        WarmupCosine(**kwargs)
