"""DeepLIFT/SHAP (tangermeme) and integrated gradients (captum) through the ACGT adapter: their sums are
the prediction differences they explain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crmnet.interpret.attribution import AttributionConfig, attribute, sequence_onehot
from crmnet.interpret.methods import deep_lift_shap, deeplift_ready, integrated_gradients
from crmnet.models import build_model
from crmnet.models.adapter import ACGTAdapter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("crmnet-tiny").eval()


@pytest.fixture(scope="module")
def onehots():
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), size=110)) for _ in range(4)]
    return torch.as_tensor(sequence_onehot(seqs))


def test_deeplift_ready_keeps_the_function(tiny, onehots):
    ready, rules = deeplift_ready(tiny)
    x = torch.randn(3, tiny.encoding.n_channels, tiny.encoding.length)
    with torch.no_grad():
        torch.testing.assert_close(ready(x), tiny(x), rtol=1e-5, atol=1e-6)
    names = {type(m).__name__ for m in ready.modules()}
    assert {"ReLU", "Sigmoid", "LeakyReLU", "BilinearOp", "Softmax"} <= names  # SE, attention, head
    assert rules == {}  # crmnet-tiny traces completely: no module needs the integrated-gradients rule


def test_deeplift_shap_sums_to_the_difference_from_the_references(tiny, onehots):
    res = deep_lift_shap(tiny, onehots, n_shuffles=8, random_state=0)
    assert res.attributions.shape == onehots.shape
    assert not (res.attributions * (1 - onehots.numpy())).any()  # observed bases only
    # Measured: gaps 1e-9..1e-8 against differences of 1e-4..5e-4 (relative < 2e-5) for crmnet-tiny.
    assert np.all(res.delta <= 1e-3 * np.abs(res.difference) + 1e-7), (res.delta, res.difference)
    np.testing.assert_allclose(res.attributions.sum((1, 2)), res.difference, rtol=1e-3, atol=1e-7)
    again = deep_lift_shap(tiny, onehots, n_shuffles=8, random_state=0, batch_size=5)
    np.testing.assert_allclose(again.attributions, res.attributions, rtol=1e-4, atol=1e-8)


def test_deeplift_shap_hypothetical_projects_onto_the_observed_bases(tiny, onehots):
    hyp = deep_lift_shap(tiny, onehots[:2], n_shuffles=4, hypothetical=True)
    obs = deep_lift_shap(tiny, onehots[:2], n_shuffles=4)
    np.testing.assert_allclose(hyp.attributions * onehots[:2].numpy(), obs.attributions, rtol=1e-5, atol=1e-9)


def test_integrated_gradients_converge_to_the_difference_from_the_baseline(tiny, onehots):
    coarse = integrated_gradients(tiny, onehots, n_steps=8)
    fine = integrated_gradients(tiny, onehots, n_steps=256)
    with torch.no_grad():
        adapter = ACGTAdapter(tiny)
        expected = (adapter(onehots) - adapter(torch.zeros_like(onehots)))[:, 0].numpy()
    np.testing.assert_allclose(fine.difference, expected, rtol=1e-5, atol=1e-8)
    # Completeness holds in the limit; a ReLU network's kinks slow the quadrature. Measured at 256
    # Gauss-Legendre points: gaps 3e-5..9e-5 against |f(x) - f(baseline)| of 1e-4..1.6e-3 (untrained
    # model), i.e. at most 5.5 % of the largest difference.
    assert np.all(fine.delta <= 0.1 * np.abs(fine.difference).max()), (fine.delta, fine.difference)
    assert fine.delta.mean() < coarse.delta.mean()


def test_attribute_method_returns_sequence_coordinates():
    torch.manual_seed(0)
    model = build_model("legnet-released").eval()
    rng = np.random.default_rng(2)
    seqs = ["".join(rng.choice(list("ACGT"), size=n)) for n in (60, 40, 60)]
    attr = attribute(model, seqs, AttributionConfig(method="integrated_gradients", ig_steps=4))
    assert attr.hypothetical.shape == (3, 4, 60) and attr.method == "integrated_gradients"
    assert not attr.mask[:, :17].any() and attr.mask[0, 17:].all() and not attr.mask[1, 40:].any()
    assert not attr.hypothetical[:, :, :17].any() and attr.hypothetical[0, :, 17:].any()
    assert len(attr.meta["difference"]) == 3
    with pytest.raises(ValueError, match="method"):
        AttributionConfig(method="occlusion")


@pytest.mark.parametrize("name", ["deepatt", "vaishnav-transformer"])
def test_deeplift_shap_through_lstm_and_attention_peers(name):
    """Bi-LSTMs get tangermeme's integrated-gradients rule (8 Gauss-Legendre points); attention and the
    rest exact rules. Measured gaps: deepatt <= 8e-4, vaishnav-transformer <= 7.5e-4 of the difference."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    _, rules = deeplift_ready(model)
    assert [kind.__name__ for kind in rules] == ["_Sequence"]
    rng = np.random.default_rng(0)
    x = torch.as_tensor(sequence_onehot(["".join(rng.choice(list("ACGT"), size=110)) for _ in range(3)]))
    res = deep_lift_shap(model, x, n_shuffles=4)
    assert np.all(res.delta <= 1e-2 * np.abs(res.difference) + 1e-7), (res.delta, res.difference)
