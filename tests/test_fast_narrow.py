"""The channels-last rewrite of narrow CRMnets computes what the plain module computes, alone and inside ISM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crmnet.design.mutagenesis import resolve_windows, saturate_codes
from crmnet.design.oracle import ModelPredictor
from crmnet.models import build_model, fastops
from crmnet.models.blocks import SameConv1d, SameConvTranspose1d, keras_same_padding
from crmnet.models.fast_narrow import FastNarrowCRMnet, _Conv, _Polyphase, _same_conv, narrow
from crmnet.models.fastpath import optimize_for_inference

pytestmark = pytest.mark.usefixtures("one_thread")

# Everything the presets do not: odd widths, an even kernel (asymmetric 'same' padding at stride 1 too),
# three heads of 8 on 20 channels (not folded), additive positions, bottleneck length 9.
ODD = {
    "length": 72,
    "encoder_channels": (6, 12, 20, 20),
    "kernel_size": 4,
    "heads": 3,
    "head_dim": 8,
    "ff_dim": 24,
    "transformer_pairs": 1,
    "position": "additive",
    "decoder_channels": 10,
    "head_channels": (7, 3),
    "mlp_units": (16, 8),
    "mlp_dropout": (0.1, 0.1),
}


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-default batch-norm statistics and non-zero biases, so every folded term is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.2)
    return model.eval()


def _onehot(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    codes = torch.randint(0, 5, (batch, length), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.one_hot(codes, 5).float().transpose(1, 2).contiguous()


@pytest.mark.parametrize("fused", [True, False])  # oneDNN with the ReLU as a post-op, or F.conv2d then ReLU
@pytest.mark.parametrize("length, kernel, stride", [(28, 7, 2), (27, 7, 2), (20, 4, 2), (19, 4, 1), (15, 5, 3)])
def test_channels_last_convolution_keeps_the_keras_windows(length, kernel, stride, fused, monkeypatch):
    monkeypatch.setattr(fastops, "ONEDNN_CONV", fused and fastops.ONEDNN_CONV)
    torch.manual_seed(length + kernel)
    conv = SameConv1d(5, 6, kernel, stride=stride)
    x = torch.randn(3, 5, length)
    with torch.inference_mode():
        want = torch.relu(conv(x))
        got = _same_conv(conv, length)(x.transpose(1, 2).contiguous()).transpose(1, 2)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length, out_channels, group", [(28, 4, 2), (28, 2, 4), (24, 1, 8), (27, 4, 1), (30, 3, 2)])
@pytest.mark.parametrize("kernel", [7, 4])
def test_narrow_outputs_run_on_groups_of_positions(length, out_channels, group, kernel):
    torch.manual_seed(length + kernel)
    conv = SameConv1d(8, out_channels, kernel)
    x = torch.randn(3, 8, length)
    fast = _same_conv(conv, length)
    assert fast.group == group
    with torch.inference_mode():
        want = torch.relu(conv(x))
        got = fast(x.transpose(1, 2).contiguous()).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel, stride", [(7, 2), (4, 2), (5, 3)])
def test_channels_last_polyphase_is_the_transposed_convolution(kernel, stride):
    torch.manual_seed(kernel)
    up = SameConvTranspose1d(6, 5, kernel, stride=stride)
    x = torch.randn(3, 6, 9)
    with torch.inference_mode():
        want = up(x)
        got = _Polyphase(up)(x.transpose(1, 2).contiguous()).transpose(1, 2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_padding_becomes_symmetric_with_zero_taps():
    weight, bias = torch.randn(2, 3, 5), torch.zeros(2)
    conv = _Conv(weight, bias, keras_same_padding(10, 5, 2), 2, relu=False)
    assert conv.pad == 2 and conv.weight.shape[-1] == 6 and torch.all(conv.weight[..., 0] == 0)


def _assert_same_function(model: torch.nn.Module, x: torch.Tensor, chunk: int) -> None:
    fast = optimize_for_inference(model)
    assert isinstance(fast, FastNarrowCRMnet)
    fast.CHUNK = chunk  # the instance's, so that a small batch crosses a chunk boundary
    with torch.inference_mode():
        want, got = model(x), fast(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 1e-5 * scale, (got - want).abs().max().item() / scale


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("crmnet-tiny", {}),
        ("crmnet-small", {}),
        ("crmnet-tiny", ODD),
        ("crmnet-tiny", {**ODD, "se": False, "transformer": False}),
    ],
)
def test_narrow_rewrite_equals_the_module_across_chunks(name, overrides):
    torch.manual_seed(7)
    model = _perturb(build_model(name, **overrides), seed=3)
    assert narrow(model)
    _assert_same_function(model, _onehot(11, model.config.length, seed=1), chunk=4)


def test_which_models_are_narrow():
    with torch.device("meta"):
        assert narrow(build_model("crmnet-tiny")) and narrow(build_model("crmnet-small"))
        assert not narrow(build_model("crmnet")) and not narrow(build_model("legnet"))
        assert not narrow(build_model("crmnet-tiny", decoder_channels=128))


class _PlainISM:
    """Plain ISM: the plain module on every mutant, no variant path and no rewrite."""

    def __init__(self, model: torch.nn.Module):
        self.inner, self.device = ModelPredictor(model, batch_size=400), "cpu"
        self.inner.runner = lambda: model

    def __call__(self, codes, lengths) -> np.ndarray:
        return self.inner(codes, lengths)


def test_ism_through_the_fast_path_equals_plain_ism():
    torch.manual_seed(8)
    model = _perturb(build_model("crmnet-tiny"), seed=4)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (4, 110)).astype(np.uint8)
    lengths = np.array([110, 104, 97, 110])
    codes[1, 104:] = 4  # shorter sequences are padded with N codes
    codes[2, 97:] = 4
    codes[3, [0, 50, 51, 109]] = 4  # N inside a sequence: four mutants there
    windows = resolve_windows(codes, lengths, None)
    fast = ModelPredictor(model, batch_size=400)  # batches cut through one sequence's mutants
    assert isinstance(fast.runner(), FastNarrowCRMnet)
    got = saturate_codes(fast, codes, lengths, windows)
    want = saturate_codes(_PlainISM(model), codes, lengths, windows)
    scale = np.abs(want.prediction).max()
    assert np.array_equal(np.isnan(got.delta), np.isnan(want.delta))
    assert np.nanmax(np.abs(got.delta - want.delta)) <= 1e-5 * scale
    assert np.abs(got.prediction - want.prediction).max() <= 1e-5 * scale
    assert np.array_equal(got.reference, want.reference)


def test_channels_last_onehot_is_the_onehot_laid_out_for_the_rewrite():
    model = build_model("crmnet-tiny")
    predictor = ModelPredictor(model)
    codes = np.random.default_rng(2).integers(0, 5, (6, 100)).astype(np.uint8)
    lengths = np.array([100, 100, 90, 80, 100, 7])
    want = predictor.onehot(codes, lengths)
    got = predictor.onehot(codes, lengths, channels_last=True)
    assert got.shape == want.shape and torch.equal(got, want)
    assert got.transpose(1, 2).is_contiguous()  # what FastNarrowCRMnet reads without a copy
    assert FastNarrowCRMnet.CHANNELS_LAST and getattr(predictor.runner(), "CHANNELS_LAST", False)


def test_variants_predict_the_references_alongside():
    torch.manual_seed(9)
    model = _perturb(build_model("crmnet-tiny"), seed=5)
    predictor = ModelPredictor(model, batch_size=5)
    codes = np.random.default_rng(3).integers(0, 4, (3, 110)).astype(np.uint8)
    lengths = np.array([110, 100, 110])
    row = np.array([0, 2, 2, 1, 0, 1, 2])
    variants = codes[row].copy()
    variants[np.arange(len(row)), np.arange(len(row)) * 7] = 4
    reference, variant = predictor.variants(codes, lengths, torch.as_tensor(row), torch.as_tensor(variants))
    np.testing.assert_allclose(reference, predictor(codes, lengths), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(variant, predictor(variants, lengths[row]), rtol=1e-6, atol=1e-6)
