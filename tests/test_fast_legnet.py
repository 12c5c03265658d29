"""FastLegNet computes what the plain LegNet computes: the fixture's weights and two unusual configurations.

Tolerances: the algebra is checked in float64 (1e-9). In float32 the two small configurations agree
within 1e-5 absolute. The fixture's weights (the released architecture, its last convolution scaled by
10) amplify float32 rounding: the plain module differs from itself by 1.1e-5 when the same batch is
split differently and from its float64 evaluation by 1.3e-5 (outputs 4.1–8.4), so there it is held to
1e-5 relative to each output (the rewrite's float64 distance, 1.3e-5, is the plain module's).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from crmnet.models import build_model
from crmnet.models.fast_legnet import FastLegNet, _DFTConvSiLU, _widened
from crmnet.models.fastpath import optimize_for_inference, worthwhile
from crmnet.models.legnet import LegNet, LegNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-default batch-norm statistics and non-zero biases, so every folded term is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "bilinear" in name:
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.5)
    return model.eval()


def _inputs(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """One-hot rows (≈5 % N, 0.25 in every channel), then a few soft (probability) columns' rows."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (batch, length), generator=g)
    x = torch.nn.functional.one_hot(codes, 4).float().transpose(1, 2).contiguous()
    x.transpose(1, 2)[torch.rand(batch, length, generator=g) < 0.05] = 0.25
    soft = torch.rand(3, 4, length, generator=g)
    x[-3:] = soft / soft.sum(dim=1, keepdim=True)
    return x


ODD = {
    "plain-se-k5-groups4": LegNetConfig(block_sizes=(32, 16, 24), kernel_size=5, expand=2, filters_per_group=4,
                                        se_reduction=2, singleton_channel=False, length=96, prefix=""),
    "bilinear-k3-depthwise": LegNetConfig(block_sizes=(48, 24, 16, 16), kernel_size=3, expand=3,
                                          filters_per_group=1, se_reduction=4, se_bilinear_rank=0.5),
}


@pytest.mark.parametrize("name", sorted(ODD))
@pytest.mark.parametrize("dft_channels", [1, 10**6])
def test_odd_configurations_match_the_plain_module(name, dft_channels, monkeypatch):
    torch.manual_seed(7)
    model = _perturb(LegNet(ODD[name]))
    monkeypatch.setattr(FastLegNet, "DFT_CHANNELS", dft_channels)  # every resize through the DFT, or none
    monkeypatch.setattr(FastLegNet, "CHUNK", 4)  # 11 rows: chunks of 4, 4 and 3
    x = _inputs(11, model.config.length)
    with torch.inference_mode():
        want = model(x)
        got = FastLegNet(model)(x)
        got64 = FastLegNet(model, torch.float64)(x.double())
        want64 = copy.deepcopy(model).double()(x.double())
    assert got.dtype == torch.float32 and got.shape == (11,)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got64, want64, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def fixture_model(shared):
    from crmnet.zoo.legnet import import_file

    path = shared / "fixtures" / "legnet" / "model_300.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    model, _ = import_file(path)
    return model, np.load(shared / "fixtures" / "legnet" / "reference_io.npz")


def test_fixture_weights_match_the_plain_module(fixture_model):
    model, ref = fixture_model
    # 40 reference rows (chunks of 32 and 8), with N in some columns of three rows and three soft rows
    x = torch.tensor(ref["inputs_forward"][:40, :4]).contiguous()
    x[-6:-3].transpose(1, 2)[:, 60:70] = 0.25
    soft = torch.rand(3, 4, x.shape[-1], generator=torch.Generator().manual_seed(3))
    x[-3:] = soft / soft.sum(dim=1, keepdim=True)
    fast = optimize_for_inference(model)
    assert isinstance(fast, FastLegNet) and worthwhile(model)
    with torch.inference_mode():
        want, got = model(x), fast(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
        x64 = x[:6].double()
        torch.testing.assert_close(FastLegNet(model, torch.float64)(x64), copy.deepcopy(model).double()(x64),
                                   rtol=0, atol=1e-9)


def test_dispatch_and_cache():
    model = build_model("legnet").eval()
    fast = optimize_for_inference(model)
    assert isinstance(fast, FastLegNet) and optimize_for_inference(model) is fast
    with torch.no_grad():
        model.mapper[0].bias.add_(1.0)
    assert optimize_for_inference(model) is not fast  # a changed weight rebuilds it
    even = LegNet(LegNetConfig(block_sizes=(16, 8), kernel_size=4))
    assert optimize_for_inference(even) is even and not worthwhile(even)
    with torch.inference_mode():
        assert optimize_for_inference(model)(torch.zeros(0, 4, 150)).shape == (0,)


def test_widened_grouped_weight_is_block_diagonal():
    weight = torch.arange(1, 8 * 2 * 3 + 1, dtype=torch.float64).view(8, 2, 3)  # 4 groups of 2 channels
    wide, groups = _widened(weight, 4, 4)
    assert groups == 2 and wide.shape == (8, 4, 3)
    x = torch.randn(2, 8, 9, dtype=torch.float64)
    torch.testing.assert_close(torch.nn.functional.conv1d(x, wide, groups=2, padding=1),
                               torch.nn.functional.conv1d(x, weight, groups=4, padding=1))
    assert _widened(weight, 1, 4)[1] == 1 and _widened(weight, 4, 3)[1] == 4  # dense; 2 does not divide 3


@pytest.mark.parametrize(("length", "segment"), [(20, 50), (21, 50), (20, 8), (21, 8), (22, 8)])
def test_dft_resize_is_the_convolution(length, segment, monkeypatch):
    # one window (n = L + 6 even, then odd); 2 and 3 segments of 10 and 7 (n even and odd); 3 of 8 (past L)
    monkeypatch.setattr(_DFTConvSiLU, "SEGMENT", segment)
    torch.manual_seed(3)
    unit = _perturb(torch.nn.Sequential(torch.nn.Conv1d(12, 5, 7, padding=3, bias=False), torch.nn.BatchNorm1d(5)))
    x = torch.randn(3, 12, 1, length, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = torch.nn.functional.silu(unit.double()(x.squeeze(2)))
        got = _DFTConvSiLU(unit, torch.float64)([x[:, :4], x[:, 4:]])
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.squeeze(2), want, rtol=0, atol=1e-12)
