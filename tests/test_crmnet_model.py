"""CRMnet: exact size, Keras semantics (padding, positions, wiring), outputs, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crmnet.data.encoding import CRMNET, encode, onehot
from crmnet.models import CRMnet, CRMnetConfig, build_model, count_parameters
from crmnet.models.blocks import SameConv1d, SameConvTranspose1d, keras_same_padding
from crmnet.models.crmnet import position_gains
from crmnet.models.fastpath import optimize_for_inference

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def full() -> CRMnet:
    torch.manual_seed(0)
    return build_model("crmnet").eval()


def test_exact_parameter_counts(full):
    trainable, stats = count_parameters(full)
    assert trainable == 34_165_681
    assert stats == 4_608
    assert trainable + stats == 34_170_289
    assert sum(p.numel() for p in full.parameters()) == trainable  # nothing frozen


def test_stage_counts_match_spec(full):
    sd = full.state_dict()

    def stage(prefix: str) -> int:
        return sum(v.numel() for k, v in sd.items() if k.startswith(prefix) and "num_batches" not in k)

    assert stage("encoder.") == 4_490_368
    assert stage("transformer.") == 25_777_152 == 8 * 3_222_144
    assert stage("decoder.") == 2_626_816
    assert stage("head.") == 314_928
    assert stage("mlp.") == 961_025


def test_encoding_and_norm_constants(full):
    assert full.encoding == CRMNET and full.encoding.channels == "NACGT"
    bns = [m for m in full.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    lns = [m for m in full.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(bns) == 14 and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert len(lns) == 16 and all(m.eps == 1e-6 for m in lns)
    attn = full.transformer[0].attn
    assert (attn.heads, attn.head_dim, attn.q.out_features) == (12, 256, 3072)


def test_position_gains_are_the_float32_values():
    expected = [
        0.0,
        0.99721950,
        -0.14862648,
        -0.97506815,
        0.29395148,
        0.93125707,
        -0.43274605,
        -0.86675954,
        0.56192964,
        0.78301066,
        -0.67863083,
        -0.68186373,
        0.78025484,
        0.56557572,
    ]
    gains = position_gains(14, 112)
    assert gains.dtype == torch.float32
    np.testing.assert_allclose(gains.numpy(), expected, atol=1e-7)


def test_keras_same_padding_stride2_is_4_before_5_after():
    assert keras_same_padding(112, 11, 2) == (4, 5)
    assert keras_same_padding(14, 11, 1) == (5, 5)
    torch.manual_seed(1)
    conv = SameConv1d(3, 2, 11, stride=2)
    x = torch.randn(2, 3, 112)
    ref = F.conv1d(F.pad(x, (4, 5)), conv.weight, conv.bias, stride=2)
    assert conv(x).shape == (2, 2, 56)
    torch.testing.assert_close(conv(x), ref)
    # the symmetric padding gives the right length but windows shifted by one
    assert not torch.allclose(F.conv1d(x, conv.weight, conv.bias, stride=2, padding=5), ref)


def test_keras_same_transposed_conv_by_definition():
    """Keras 'same' ConvTranspose: out[t] = Σ w[k] x[i] over t = 2i + k − 4 (k = 0..10), t in [0, 2L)."""
    torch.manual_seed(2)
    up = SameConvTranspose1d(2, 3, 11, stride=2)
    x = torch.randn(1, 2, 7)
    y = up(x)
    assert y.shape == (1, 3, 14)
    w = up.weight.detach()  # (in, out, k)
    ref = up.bias.detach()[:, None].repeat(1, 14).clone()
    for i in range(7):
        for k in range(11):
            t = 2 * i + k - 4
            if 0 <= t < 14:
                ref[:, t] += w[:, :, k].T @ x[0, :, i]
    torch.testing.assert_close(y[0], ref)
    # The CPU path (a convolution over zero-stuffed input) and PyTorch's transposed convolution (used on
    # GPUs) are the same arithmetic.
    torch.testing.assert_close(y, torch.nn.ConvTranspose1d.forward(up, x)[..., :14])


def test_transformer_pairs_are_summed(full):
    """x = T1(pe); x = T3(x) + T2(x); ...; x = T8(x), with the multiplicative gains first."""
    t = torch.randn(2, 14, 256)
    with torch.no_grad():
        got = full._bottleneck(t.transpose(1, 2)).transpose(1, 2)
        blocks = full.transformer
        h = blocks[0](t * position_gains(14, 112)[:, None])
        for a, b in ((1, 2), (3, 4), (5, 6)):
            h = blocks[a](h) + blocks[b](h)
        h = blocks[7](h)
    torch.testing.assert_close(got, h)


def _random_onehot(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), size=rng.integers(100, 115))) for _ in range(n)]
    codes, _ = encode(seqs, CRMNET)
    return onehot(torch.as_tensor(codes), CRMNET)


def test_output_shape_and_batch_size_independence(full):
    x = _random_onehot(3)
    assert x.shape == (3, 5, 112)
    with torch.no_grad():
        together = full(x)
        split = torch.cat([full(x[:1]), full(x[1:])])
    assert together.shape == (3,)
    torch.testing.assert_close(together, split, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["crmnet-small", "crmnet-tiny"])
def test_presets_shapes_and_batch_independence(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = _random_onehot(9, seed=3)
    with torch.no_grad():
        y = model(x)
        y2 = torch.cat([model(x[:4]), model(x[4:])])
    assert y.shape == (9,) and torch.isfinite(y).all()
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)


def test_ablations_change_the_architecture():
    torch.manual_seed(0)
    no_t = build_model("crmnet-tiny", transformer=False)
    no_se = build_model("crmnet-tiny", se=False)
    assert no_t.transformer is None and not any("transformer" in k for k in no_t.state_dict())
    assert not any(".se" in k for k in no_se.state_dict())
    add = build_model("crmnet-tiny", position="additive")
    assert add.position.shape == (add.config.tokens, add.config.encoder_channels[-1])


def test_train_mode_uses_dropout_eval_does_not():
    torch.manual_seed(0)
    model = build_model("crmnet-tiny")
    x = _random_onehot(4)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        CRMnetConfig(length=100)
    with pytest.raises(ValueError, match="position"):
        CRMnetConfig(position="rotary")
    with pytest.raises(ValueError, match="mlp_dropout"):
        CRMnetConfig(mlp_units=(8,), mlp_dropout=(0.1, 0.1))
    with pytest.raises(ValueError, match="channels"):
        CRMnetConfig(channels="ACGU")


def test_keras_initialisation(full):
    conv = full.encoder[1].conv2.weight  # (128, 128, 11): fan_in 1408
    sd = math.sqrt(2 / (128 * 11))
    assert abs(conv.std().item() / sd - 1) < 0.02  # He-normal (truncated, rescaled to the full sd)
    assert conv.abs().max().item() <= 2 * sd / 0.87962566103423978 + 1e-6
    up = full.decoder[1].up.weight  # ConvTranspose: Keras kernel (11, 128 out, 128 in), fan_in = 128·11
    assert abs(up.std().item() / sd - 1) < 0.05
    dense = full.mlp[0].weight  # Dense 3584 → 256: Glorot uniform
    limit = math.sqrt(6 / (3584 + 256))
    assert dense.abs().max().item() <= limit and dense.abs().max().item() > 0.99 * limit
    assert abs(dense.std().item() - limit / math.sqrt(3)) < 0.01 * limit
    q = full.transformer[0].attn.q.weight  # Keras EinsumDense kernel (256, 12, 256): fans 3072, 65536
    q_limit = math.sqrt(6 / (12 * 256 + 256 * 256))
    assert q_limit * 0.99 < q.abs().max().item() <= q_limit
    out = full.transformer[0].attn.out.weight  # (12, 256, 256): fans 3072, 3072
    assert 0.99 * math.sqrt(6 / 6144) < out.abs().max().item() <= math.sqrt(6 / 6144)
    for name, p in full.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    assert torch.all(full.encoder[0].bn1.weight == 1)


def test_seeded_initialisation_is_deterministic():
    torch.manual_seed(7)
    a = build_model("crmnet-small").state_dict()
    torch.manual_seed(7)
    b = build_model("crmnet-small").state_dict()
    torch.manual_seed(8)
    c = build_model("crmnet-small").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.0.conv1.weight"], c["encoder.0.conv1.weight"])


def _keras_small_h5_state_dict(path) -> dict[str, torch.Tensor]:
    """Independent test oracle: the spec's Keras → PyTorch layout table applied to the HDF5 fixture."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path) as f:
        w = {
            n: [np.array(f[n][k]) for k in f[n].attrs["weight_names"]]
            for n in (s.decode() if isinstance(s, bytes) else s for s in f.attrs["layer_names"])
        }
    sd: dict[str, torch.Tensor] = {}
    t = torch.tensor
    counters = {"conv1d": 0, "batch_normalization": 0}

    def take(kind: str) -> list[np.ndarray]:
        i = counters[kind]
        counters[kind] += 1
        return w[kind if i == 0 else f"{kind}_{i}"]

    def conv(name, ws):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = t(ws[0]).permute(2, 1, 0), t(ws[1])

    def dense(name, ws):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = t(ws[0]).T, t(ws[1])

    def unit(prefix, j, se_layer):
        conv(f"{prefix}.conv{j}", take("conv1d"))
        dense(f"{prefix}.se{j}.fc1", w[se_layer][:2])
        dense(f"{prefix}.se{j}.fc2", w[se_layer][2:])
        for key, v in zip(("weight", "bias", "running_mean", "running_var"), take("batch_normalization")):
            sd[f"{prefix}.bn{j}.{key}"] = t(v)

    for i in range(4):
        unit(f"encoder.{i}", 1, f"ecb_{i + 1}__0")
        unit(f"encoder.{i}", 2, f"ecb_{i + 1}__1")
        if i < 3:
            conv(f"encoder.{i}.down", take("conv1d"))
    for k in range(8):
        ws, p = w["transformer_block" if k == 0 else f"transformer_block_{k}"], f"transformer.{k}"
        for j, name in enumerate("qkv"):
            sd[f"{p}.attn.{name}.weight"] = t(ws[2 * j].reshape(256, -1)).T
            sd[f"{p}.attn.{name}.bias"] = t(ws[2 * j + 1].reshape(-1))
        sd[f"{p}.attn.out.weight"], sd[f"{p}.attn.out.bias"] = t(ws[6].reshape(-1, 256)).T, t(ws[7])
        dense(f"{p}.ff1", ws[8:10])
        dense(f"{p}.ff2", ws[10:12])
        for j, key in enumerate(("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias")):
            sd[f"{p}.{key}"] = t(ws[12 + j])
    for i in range(3):
        ws = w["conv1d_transpose" if i == 0 else f"conv1d_transpose_{i}"]
        sd[f"decoder.{i}.up.weight"], sd[f"decoder.{i}.up.bias"] = t(ws[0]).permute(2, 1, 0), t(ws[1])
        unit(f"decoder.{i}", 1, f"dcb_{i + 1}__0")
        unit(f"decoder.{i}", 2, f"dcb_{i + 1}__1")
    for i in range(3):
        conv(f"head.{i}.conv", take("conv1d"))
        dense(f"head.{i}.se.fc1", w[f"se_{i}"][:2])
        dense(f"head.{i}.se.fc2", w[f"se_{i}"][2:])
    for i in range(5):
        dense(f"mlp.{i}", w[f"dense_{50 + i}"])
    return sd


def test_matches_the_keras_model(shared):
    """The authors' architecture built in Keras (2 heads, fixture small_h5) and this module agree."""
    fixture = shared / "fixtures" / "keras_crmnet" / "small_h5"
    model = build_model("crmnet", heads=2).eval()
    sd = _keras_small_h5_state_dict(fixture / "weights.h5")
    own = model.state_dict()
    assert {k for k in own if not k.endswith("num_batches_tracked")} == set(sd)
    model.load_state_dict(sd, strict=False)
    ref = np.load(fixture / "reference_io.npz")
    x = torch.as_tensor(ref["x"], dtype=torch.float32).transpose(1, 2)  # Keras NLC → NCL
    with torch.no_grad():
        y = model(x).numpy()
    np.testing.assert_allclose(y, ref["y"][:, 0], atol=1e-4)
    with torch.inference_mode():  # the inference rewrite predict() uses on CPUs: same function
        fast = optimize_for_inference(model)(x).numpy()
    np.testing.assert_allclose(fast, ref["y"][:, 0], atol=1e-4)
    np.testing.assert_allclose(fast, y, rtol=0, atol=1e-5 * np.abs(y).max())
    inter = np.load(fixture / "reference_intermediates.npz")
    with torch.no_grad():
        skip, _ = model.encoder[0](x[:8])
    np.testing.assert_allclose(skip.transpose(1, 2).numpy(), inter["dropout"], atol=1e-4)
