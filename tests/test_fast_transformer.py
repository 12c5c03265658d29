"""The transformer's inference rewrite computes what the plain module computes: fixture weights, odd configs,
N, soft input, chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crmnet.evaluation.predict import predict
from crmnet.models.blocks import keras_same_padding
from crmnet.models.checkpoint import load_checkpoint
from crmnet.models.fast_transformer import FastVaishnavTransformer, _FFTConv
from crmnet.models.fast_vaishnav import kmer_table
from crmnet.models.fastpath import optimize_for_inference, worthwhile
from crmnet.models.registry import build_model
from crmnet.zoo.importer import import_model
from rewrite_checks import TOL, assert_same, onehot_inputs  # TOL: measured ≈3e-6 on the fixture

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fixture_dir(shared):
    path = shared / "fixtures" / "vaishnav_transformer"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def transformer(fixture_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("transformer") / "transformer.pt"
    return load_checkpoint(import_model(fixture_dir / "fitness_function.h5", out)).eval()


def test_fixture_fast_path_matches_the_module_and_the_authors_outputs(transformer, fixture_dir):
    fast = optimize_for_inference(transformer)
    assert isinstance(fast, FastVaishnavTransformer) and worthwhile(transformer)
    ref = np.load(fixture_dir / "reference_io.npz")
    authors = torch.from_numpy(ref["inputs"].astype(np.float32)).transpose(1, 2).contiguous()  # N-padded rows
    # 100 rows cross the convolutions' chunk; one-hot rows and rows with N take the table, soft rows the product
    x = torch.cat([authors, onehot_inputs(transformer, 18, 0, n_rate=0.05),
                   torch.rand(10, 4, 110, generator=torch.Generator().manual_seed(1))])
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(2))]
    assert_same(transformer, fast, x)
    assert_same(transformer, fast, x[:5])  # a batch smaller than a chunk
    with torch.inference_mode():
        raw = (fast(authors) - transformer.config.output_shift) / transformer.config.output_scale
    assert np.abs(raw.numpy() - ref["outputs"][:, 0]).max() < TOL


def test_every_chunk_boundary_is_crossed_exactly(transformer):
    fast = FastVaishnavTransformer(transformer)
    fast.CHUNK, fast.CONV_CHUNK = 15, 4  # 40 rows cross each a few times
    x = torch.cat([onehot_inputs(transformer, 30, 3), onehot_inputs(transformer, 10, 4, n_rate=0.1)])
    assert_same(transformer, fast, x)


@pytest.mark.parametrize("overrides", [
    # 3-mer table, odd convolution widths (symmetric padding), one block, 2-wide heads
    {"motif_filters": 12, "motif_width": 9, "coop_filters": 8, "coop_width": 7, "transformer_layers": 1,
     "heads": 4, "ff_dim": 4, "lstm_units": 3, "dense_units": (5,), "length": 40},
    # 2-mer table, even widths, three blocks, one head, no hidden Dense layer, a softmax epsilon too large
    # to omit (the plain attention)
    {"motif_filters": 6, "motif_width": 8, "coop_filters": 6, "coop_width": 6, "transformer_layers": 3,
     "heads": 1, "ff_dim": 3, "lstm_units": 2, "dense_units": (), "length": 33, "softmax_eps": 1e-3},
    # 1-mer table, a kernel wider than half the sequence
    {"motif_filters": 5, "motif_width": 7, "coop_filters": 4, "coop_width": 11, "transformer_layers": 2,
     "heads": 2, "ff_dim": 2, "lstm_units": 4, "dense_units": (6, 3), "length": 17},
])
def test_other_configurations_match(overrides):
    torch.manual_seed(0)
    model = build_model("vaishnav-transformer-keras", output_shift=1.5, output_scale=-2.0, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # non-zero biases, non-trivial layer-norm and batch-norm affines
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.5)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    soft = torch.rand(6, 4, model.encoding.length, generator=torch.Generator().manual_seed(5))
    x = torch.cat([onehot_inputs(model, 20, 0), onehot_inputs(model, 10, 1, n_rate=0.1), soft])
    assert_same(model, FastVaishnavTransformer(model), x)


@pytest.mark.parametrize(("length", "width"), [(110, 30), (40, 7), (17, 16), (5, 9)])
def test_frequency_domain_convolution_is_the_same_convolution(length, width):
    g = torch.Generator().manual_seed(length)
    weight = torch.randn(6, 5, width, generator=g, dtype=torch.float64) / (5 * width) ** 0.5
    bias = torch.randn(6, generator=g, dtype=torch.float64)
    x = torch.randn(3, 5, length, generator=g)
    want = F.relu(F.conv1d(F.pad(x, keras_same_padding(length, width, 1)), weight.float(), bias.float()))
    got = _FFTConv(weight, bias, length)(x.permute(2, 0, 1).contiguous())  # time-major in and out
    torch.testing.assert_close(got.permute(1, 2, 0), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("r", [1, 3])
def test_kmer_table_padding_symbol_is_a_zero_column(r):
    g = torch.Generator().manual_seed(r)
    weight, bias = torch.randn(5, 4, 6, generator=g), torch.randn(5, generator=g)
    codes = torch.randint(0, 6, (3, 20), generator=g)  # 4: N (every channel 1), 5: padding (every channel 0)
    x = F.one_hot(codes.clamp(max=3), 4).float()
    x[codes == 4], x[codes == 5] = 1.0, 0.0
    want = F.conv1d(x.transpose(1, 2), weight, bias).transpose(1, 2)  # (3, 15, 5)
    table = kmer_table(weight, bias, r, 1.0, padding=True).view(6 // r, 6**r, 5)
    kmers = sum(codes[:, j : codes.shape[1] - r + 1 + j] * 6 ** (r - 1 - j) for j in range(r))
    got = sum(table[g_, kmers[:, g_ * r : g_ * r + 15]] for g_ in range(6 // r))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_predict_runs_the_transformer_through_the_rewrite(transformer, fixture_dir):
    ref = np.load(fixture_dir / "reference_io.npz")
    got = predict(transformer, list(ref["sequences"]), batch_size=1024)
    assert np.abs(got - ref["predictions"][:, 0]).max() / transformer.config.output_scale < TOL
