"""The DeepATT inference rewrite computes what the plain module computes: real weights, odd configs, N, soft input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from crmnet.data.encoding import encode, onehot
from crmnet.design.oracle import ModelPredictor, encode_sequences
from crmnet.evaluation.predict import predict
from crmnet.models.checkpoint import load_checkpoint
from crmnet.models.fast_vaishnav import FastDeepATT, kmer_table
from crmnet.models.fastops import scripted
from crmnet.models.fastpath import optimize_for_inference, worthwhile
from crmnet.models.registry import build_model
from crmnet.zoo.importer import import_model
from rewrite_checks import TOL, assert_same, onehot_inputs  # TOL: measured ≤ 1e-6 on the release

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def deepatt(shared, tmp_path_factory):
    h5 = shared / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
    if not h5.is_file():
        pytest.skip(f"{h5} not found")
    return load_checkpoint(import_model(h5, tmp_path_factory.mktemp("deepatt") / "deepatt.pt"))


def test_real_deepatt_fast_path_matches_the_module(deepatt):
    fast = optimize_for_inference(deepatt)
    assert isinstance(fast, FastDeepATT) and worthwhile(deepatt)
    # 300 rows cross the convolution's and the attention's chunks; one-hot rows and rows with N take the
    # table, soft rows the matrix product
    x = torch.cat([onehot_inputs(deepatt, 200, 0), onehot_inputs(deepatt, 60, 1, n_rate=0.05),
                   torch.rand(40, 4, 110, generator=torch.Generator().manual_seed(2))])
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(3))]
    assert_same(deepatt, fast, x)
    assert_same(deepatt, fast, x[:7])  # a batch smaller than a chunk


@pytest.mark.parametrize("overrides", [
    {"filters": 12, "width": 9, "pool": 3, "lstm_units": 4, "heads": 4},  # 2-wide heads, 3-mer table
    {"filters": 10, "width": 8, "pool": 2, "lstm_units": 6, "heads": 3, "softmax_eps": 1e-2},  # 4-wide heads
    {"filters": 6, "width": 7, "pool": 1, "lstm_units": 3, "heads": 3, "length": 40, "dense_units": (5,)},
])
def test_other_deepatt_configurations_match(overrides):
    torch.manual_seed(0)
    model = build_model("deepatt-keras", output_shift=1.5, output_scale=-2.0, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # non-zero biases, a non-default forget gate
    x = torch.cat([onehot_inputs(model, 20, 0), onehot_inputs(model, 10, 1, n_rate=0.1)])
    assert_same(model, FastDeepATT(model), x)


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("fill", [1.0, 0.25, 0.0])
def test_kmer_table_is_the_convolution_of_one_hot_input_and_n(r, fill):
    g = torch.Generator().manual_seed(r)
    weight, bias = torch.randn(5, 4, 6, generator=g), torch.randn(5, generator=g)
    codes = torch.randint(0, 5, (3, 20), generator=g)  # 4 is N: every channel ``fill``
    x = torch.nn.functional.one_hot(codes.clamp(max=3), 4).float()
    x[codes == 4] = fill
    want = torch.nn.functional.conv1d(x.transpose(1, 2), weight, bias).transpose(1, 2)  # (3, 15, 5)
    table = kmer_table(weight, bias, r, fill).view(6 // r, 5**r, 5)
    kmers = sum(codes[:, j : codes.shape[1] - r + 1 + j] * 5 ** (r - 1 - j) for j in range(r))
    got = sum(table[g_, kmers[:, g_ * r : g_ * r + 15]] for g_ in range(6 // r))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_scores_that_could_overflow_exp2_are_shifted(deepatt, monkeypatch):
    model = copy.deepcopy(deepatt)
    with torch.no_grad():
        model.attn.q.weight.mul_(40.0)  # scores of several hundred: exp2 would overflow unshifted
    calls = []
    shifted = FastDeepATT._score_max
    monkeypatch.setattr(FastDeepATT, "_score_max", staticmethod(lambda *a: calls.append(1) or shifted(*a)))
    assert_same(model, FastDeepATT(model), onehot_inputs(model, 30, 6, n_rate=0.05))
    assert calls  # the shifted branch ran


def test_every_chunk_boundary_is_crossed_exactly(deepatt):
    fast = FastDeepATT(deepatt)
    fast.CHUNK, fast.CONV_CHUNK, fast.ATTENTION_CHUNK = 50, 16, 7  # 130 rows cross each a few times
    x = torch.cat([onehot_inputs(deepatt, 100, 4), onehot_inputs(deepatt, 30, 5, n_rate=0.05)])
    assert_same(deepatt, fast, x)


def test_predict_runs_deepatt_through_the_rewrite(deepatt, shared):
    seqs = [line.split(",")[1] for line in
            (shared / "data" / "vaishnav2022" / "peer_predictions" / "Native_complex_DeepAtt_model.csv")
            .read_text().splitlines()[1:301]]
    got = predict(deepatt, seqs, batch_size=1024)
    with torch.inference_mode():
        codes, _ = encode(seqs, deepatt.encoding)
        want = deepatt(onehot(torch.from_numpy(codes), deepatt.encoding)).numpy()
    assert np.abs(got - want).max() / deepatt.config.output_scale < TOL


class _Plain:
    """The plain module as a predictor (no rewrite, no variant path): plain ISM, one forward per mutant."""

    def __init__(self, model):
        self.inner, self.device = ModelPredictor(model, batch_size=512), "cpu"

    def __call__(self, codes, lengths):
        with torch.inference_mode():
            x = self.inner.onehot(codes, lengths)
            return self.inner.model(x).numpy()


def test_saturation_mutagenesis_reusing_the_prefix_equals_plain_ism(deepatt):
    from crmnet.design.mutagenesis import resolve_windows, saturate_codes

    rng = np.random.default_rng(0)
    # full-length constructs, a short one (left-padded with N in the model) and one with an N in it
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (110, 110, 96, 120)]
    seqs[1] = seqs[1][:50] + "N" + seqs[1][51:]
    codes, lengths = encode_sequences(seqs)
    windows = resolve_windows(codes, lengths, None)
    fast = ModelPredictor(deepatt, batch_size=300)  # batches cut through the mutants of one sequence
    assert hasattr(fast.runner(), "mutants")
    got = saturate_codes(fast, codes, lengths, windows)
    want = saturate_codes(_Plain(deepatt), codes, lengths, windows)
    assert np.isfinite(got.delta).sum() == np.isfinite(want.delta).sum() == 4 * (110 + 110 + 96 + 120)
    both = np.isfinite(want.delta)
    assert np.array_equal(np.isfinite(got.delta), both)
    assert np.abs(got.delta[both] - want.delta[both]).max() / deepatt.config.output_scale < TOL
    assert np.abs(got.delta[both]).max() > 0.1  # the mutants do move the prediction


def test_the_compiled_loops_compute_what_their_python_does(deepatt):
    from crmnet.models.fast_vaishnav import _attend, _lstm_steps

    fast = FastDeepATT(deepatt)
    with torch.inference_mode():
        steps = fast.lstm.arrange(fast._project(onehot_inputs(deepatt, 20, 7)))
        args = (fast.lstm.recurrent, fast.lstm.one_half, fast.lstm.units)
        eager, compiled = _lstm_steps(steps.clone(), *args), scripted(_lstm_steps)(steps.clone(), *args)
        torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-6)
        q0, q1, k0, k1, v0, v1, ones = torch.rand(7, 27, 5, 3, generator=torch.Generator().manual_seed(8))
        v = torch.stack([v0, v1, ones])
        for shift in (None, torch.full_like(q0, 0.5)):
            torch.testing.assert_close(scripted(_attend)(q0, q1, k0, k1, v, shift), _attend(q0, q1, k0, k1, v, shift))
    assert isinstance(scripted(_lstm_steps), torch.jit.ScriptFunction)  # TorchScript runs it on this torch


def test_scripted_falls_back_to_the_python_function(monkeypatch):
    def broken(fn):
        raise RuntimeError("no TorchScript here")

    def add_one(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    monkeypatch.setattr(torch.jit, "script", broken)
    assert scripted(add_one) is add_one
