"""The inference fast path computes what the plain CRMnet computes, piece by piece and as a whole."""

from __future__ import annotations

import pytest
import torch

from crmnet.models import build_model
from crmnet.models.blocks import MultiHeadSelfAttention, SameConv1d, SameConvTranspose1d
from crmnet.models.fast_narrow import FastNarrowCRMnet
from crmnet.models.fastops import FoldedAttention
from crmnet.models.fastpath import (
    FastCRMnet,
    _Polyphase,
    _same_conv,
    optimize_for_inference,
    worthwhile,
)

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
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_((torch.rand(p.shape, generator=g) - 0.5) * 0.2)
    return model.eval()


def _onehot(batch: int, length: int = 112, seed: int = 0) -> torch.Tensor:
    codes = torch.randint(0, 5, (batch, length), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.one_hot(codes, 5).float().transpose(1, 2).contiguous()


@pytest.mark.parametrize("stride, kernel", [(2, 11), (2, 7), (2, 4), (3, 5), (2, 2)])
@pytest.mark.parametrize("cin, cout", [(6, 5), (40, 36)])  # direct; through the FFT (≥ FFT_CHANNELS)
def test_polyphase_equals_the_transposed_convolution(stride, kernel, cin, cout):
    torch.manual_seed(stride * 100 + kernel)
    up = SameConvTranspose1d(cin, cout, kernel, stride=stride)
    x = torch.randn(3, cin, 9)
    want = torch.nn.ConvTranspose1d.forward(up, x)[..., : 9 * stride]  # PyTorch's own definition
    out = torch.empty(3, cout, 9 * stride)
    with torch.inference_mode():
        _Polyphase(up)(x, out)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=2e-6 * want.abs().max().item())


@pytest.mark.parametrize("heads, head_dim, embed", [(12, 256, 256), (3, 16, 24), (2, 8, 16)])
def test_folded_attention_equals_the_module(heads, head_dim, embed):
    torch.manual_seed(heads)
    attn = MultiHeadSelfAttention(embed, heads, head_dim).eval()
    with torch.no_grad():
        for lin in (attn.q, attn.k, attn.v, attn.out):
            lin.bias.uniform_(-0.5, 0.5)  # q and k biases change the scores; the fold must keep them
    x = torch.randn(4, 14, embed)
    with torch.inference_mode():
        want, got = attn(x), FoldedAttention(attn)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def _assert_same_function(model: torch.nn.Module, x: torch.Tensor, fast: torch.nn.Module | None = None) -> None:
    """``fast`` (default: what optimize_for_inference gives, a FastCRMnet) computes what ``model`` does."""
    if fast is None:
        fast = optimize_for_inference(model)
        assert isinstance(fast, FastCRMnet)
    with torch.inference_mode():
        want, got = model(x), fast(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() <= 1e-5 * scale, (got - want).abs().max().item() / scale


def test_full_crmnet_fast_path_matches_within_1e_5():
    torch.manual_seed(0)
    _assert_same_function(_perturb(build_model("crmnet")), _onehot(3))


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("crmnet-small", {}),
        ("crmnet-tiny", {}),
        ("crmnet-tiny", {"se": False}),
        ("crmnet-tiny", {"transformer": False}),
        ("crmnet-tiny", {"position": "additive", "heads": 2, "head_dim": 32}),  # folded, additive
    ],
)
def test_presets_and_ablations_fast_path(name, overrides):
    torch.manual_seed(1)
    model = _perturb(build_model(name, **overrides))
    x = _onehot(5, model.config.length)
    _assert_same_function(model, x, FastCRMnet(model))  # the wide rewrite stays exact on narrow models
    fast = optimize_for_inference(model)  # which takes the narrow one (tests/test_fast_narrow.py)
    assert isinstance(fast, FastNarrowCRMnet)
    _assert_same_function(model, x, fast)


def test_the_model_is_left_as_it_was_and_others_pass_through():
    torch.manual_seed(2)
    model = build_model("crmnet-tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    assert model.training and not fast.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in fast.parameters())
    other = build_model("dream-cnn")
    assert optimize_for_inference(other) is other
    with pytest.raises(ValueError, match="dtype"):
        optimize_for_inference(model, dtype=torch.float16)


def test_bfloat16_is_opt_in_and_close():
    torch.manual_seed(3)
    model = _perturb(build_model("crmnet-small"))
    x = _onehot(16)
    fast = optimize_for_inference(model, dtype=torch.bfloat16)
    with torch.inference_mode():
        want, got = model(x), fast(x)
    assert got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 0.05 * want.abs().max().item()


def test_the_fast_module_is_cached_until_the_weights_change():
    torch.manual_seed(4)
    model = build_model("crmnet-tiny").eval()
    fast = optimize_for_inference(model)
    assert optimize_for_inference(model) is fast
    assert optimize_for_inference(model, dtype=torch.bfloat16) is not fast
    x = _onehot(2)
    with torch.no_grad():
        model.mlp[-1].bias.add_(1.0)  # an in-place update, as an optimiser step makes
    refreshed = optimize_for_inference(model)
    assert refreshed is not fast
    with torch.inference_mode():
        torch.testing.assert_close(refreshed(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("length", [14, 28, 112, 9])
def test_fft_convolution_equals_the_direct_one(length):
    torch.manual_seed(length)
    conv = SameConv1d(128, 160, 11)
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
    x = torch.randn(3, 128, length)
    fast = _same_conv(conv)
    assert fast.fft
    with torch.inference_mode():
        want, got = torch.relu(conv(x)), fast(x)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6 * want.abs().max().item())


def test_chunked_batches_match_single_sequences():
    torch.manual_seed(5)
    model = _perturb(build_model("crmnet-tiny"))
    fast = FastCRMnet(model)
    x = _onehot(FastCRMnet.CHUNK + 7)
    with torch.inference_mode():
        whole = fast(x)
        one_by_one = torch.cat([fast(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, one_by_one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length", [112, 28, 15])
def test_fft_strided_convolution_keeps_the_keras_windows(length):
    torch.manual_seed(length)
    conv = SameConv1d(128, 128, 11, stride=2)
    x = torch.randn(2, 128, length)
    fast = _same_conv(conv)
    assert fast.fft
    with torch.inference_mode():
        want, got = torch.relu(conv(x)), fast(x)
    assert got.shape == want.shape == (2, 128, -(-length // 2))
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6 * want.abs().max().item())


def test_predict_uses_the_rewrite_only_where_it_pays():
    with torch.device("meta"):
        assert worthwhile(build_model("crmnet")) and worthwhile(build_model("crmnet-no-se"))
        assert worthwhile(build_model("crmnet-tiny")) and worthwhile(build_model("crmnet-small"))  # narrow
        assert not worthwhile(build_model("crmnet-tiny", head_channels=(128, 4)))  # neither narrow nor large
        assert worthwhile(build_model("legnet")) and not worthwhile(build_model("dream-cnn"))
