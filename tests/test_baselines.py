"""Peer models: sizes, input conventions, a training step each on CPU, LegNet's head, loss and strands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crmnet.data.encoding import VAISHNAV, encode, onehot, revcomp_onehot
from crmnet.models import build_model, count_parameters
from crmnet.models.baselines import LEGNET_PREFIX
from crmnet.training.losses import loss_module

PEERS = {  # name: (trainable parameters, batch-norm statistics)
    "vaishnav-transformer": (1_295_569, 1_280),
    "vaishnav-cnn": (7_665_921, 0),
    "deepsea": (6_590_369, 0),
    "danq": (5_230_971, 0),
    "deepatt": (84_401, 0),
    "legnet": (1_725_122, 11_136),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(model, n: int, seed: int = 0) -> torch.Tensor:
    """n random 105–112-nt sequences (a few N) encoded the way ``model`` wants: (n, C, L)."""
    rng = np.random.default_rng(seed)
    seqs = [
        "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=rng.integers(105, 113)))
        for _ in range(n)
    ]
    codes, _ = encode(seqs, model.encoding)
    return onehot(torch.as_tensor(codes), model.encoding)


@pytest.mark.parametrize("name", list(PEERS))
def test_size_shape_and_batch_independence(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    assert count_parameters(model) == PEERS[name]
    x = _batch(model, 5)
    assert x.shape == (5, model.encoding.n_channels, model.encoding.length)
    with torch.no_grad():
        y = model(x)
        y2 = torch.cat([model(x[:2]), model(x[2:])])
    assert y.shape == (5,) and torch.isfinite(y).all()
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(PEERS))
def test_trains_for_a_step(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    x = _batch(model, 8, seed=1)
    y = torch.linspace(2.0, 15.0, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, pred = loss_module(model)(x, y)  # the loss training uses: MSE for the peers, KL for LegNet
    assert loss.ndim == 0 and torch.isfinite(loss) and pred.shape == (8,)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    changed = [
        k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert len(changed) > len(before) // 2


def test_input_conventions():
    for name in ("vaishnav-transformer", "vaishnav-cnn", "deepsea", "danq", "deepatt"):
        assert build_model(name).encoding == VAISHNAV
    enc = build_model("legnet").encoding
    assert (enc.length, enc.channels, enc.unknown_fill, enc.pad, enc.truncate) == (
        150,
        "ACGT",
        0.25,
        "start",
        "start",
    )
    # 40 nt of plasmid + the 110-nt sequence whose 17-nt adapter ends LegNet's 57-nt plasmid context
    assert enc.prefix == LEGNET_PREFIX and len(LEGNET_PREFIX) == 40
    construct = LEGNET_PREFIX + "TGCATTTTTTTCACATC"
    assert len(construct) == 57 and construct.startswith("AGTGCTAGCAGGAATGATG")


def test_mse_is_the_default_loss_and_huber_optional():
    torch.manual_seed(0)
    model = build_model("deepatt").eval()
    x, y = _batch(model, 4), torch.tensor([0.0, 5.0, 10.0, 15.0])
    loss, pred = loss_module(model)(x, y)
    torch.testing.assert_close(loss, torch.mean((pred - y) ** 2))
    loss, pred = loss_module(model, "huber")(x, y)
    torch.testing.assert_close(loss, torch.nn.functional.huber_loss(pred, y))


def test_lstm_uses_keras_initialisation():
    lstm = build_model("danq").lstm
    h = lstm.hidden_size
    assert torch.all(lstm.bias_ih_l0[h : 2 * h] == 1) and torch.count_nonzero(lstm.bias_ih_l0[:h]) == 0
    assert torch.count_nonzero(lstm.bias_hh_l0) == 0
    w = lstm.weight_hh_l0.T  # Keras (H, 4H) recurrent kernel: orthogonal rows
    torch.testing.assert_close(w @ w.T, torch.eye(h), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def legnet():
    torch.manual_seed(0)
    return build_model("legnet", block_sizes=(32, 16, 16))


def test_legnet_eval_averages_both_strands(legnet):
    legnet.eval()
    x = _batch(legnet, 3)
    with torch.no_grad():
        fwd = legnet.expected_bin(legnet.logits(x))
        rev = legnet.expected_bin(legnet.logits(revcomp_onehot(x, legnet.encoding), reverse=1.0))
        torch.testing.assert_close(legnet(x), (fwd + rev) / 2)
        legnet.train()
        torch.testing.assert_close(
            legnet(x), legnet.expected_bin(legnet.logits(x))
        )  # training: forward strand
    legnet.eval()
    assert torch.all((legnet(x) >= 0) & (legnet(x) <= 17))


def test_legnet_target_distribution(legnet):
    y = torch.tensor([0.0, 4.0, 9.3, 17.0])
    p = legnet.target_distribution(y)
    assert p.shape == (4, 18)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(4))
    # Normal(4.5, 0.5) over (4, 5]: P(|z| <= 1) = 0.6827
    assert abs(p[1, 4].item() - 0.6827) < 1e-3
    # the open ends take the tails: label 17 → bin 17 holds P(z > -1) = 0.8413
    assert abs(p[3, 17].item() - 0.8413) < 1e-3


def test_legnet_loss_flags_and_augmentation(legnet):
    x = _batch(legnet, 6, seed=2)
    y = torch.tensor([3.0, 4.5, 7.0, 8.25, 11.0, 12.5])
    legnet.eval()
    with torch.no_grad():
        loss, pred = legnet.compute_loss(x, y)
        # singleton flag = integer label; no strand flips in eval mode
        logits = legnet.logits(x, reverse=0.0, singleton=torch.tensor([1.0, 0, 1, 0, 1, 0]))
        target = legnet.target_distribution(y)
        expected = (target * (target.clamp_min(1e-30).log() - logits.log_softmax(-1))).sum(1).mean()
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(pred, legnet.expected_bin(logits))
        assert loss > 0
        legnet.train()
        torch.manual_seed(5)
        flip = torch.rand(6) < 0.5
        torch.manual_seed(5)
        loss_aug, _ = legnet.compute_loss(x, y)
        x_aug = torch.where(flip[:, None, None], revcomp_onehot(x, legnet.encoding), x)
        logits = legnet.logits(x_aug, reverse=flip.float(), singleton=torch.tensor([1.0, 0, 1, 0, 1, 0]))
    assert 0 < int(flip.sum()) < 6
    expected = (target * (target.clamp_min(1e-30).log() - logits.log_softmax(-1))).sum(1).mean()
    torch.testing.assert_close(loss_aug, expected)
    legnet.eval()
