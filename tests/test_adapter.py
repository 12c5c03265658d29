"""ACGTAdapter: ACGT one-hot in sequence coordinates gives exactly the model's own prediction."""

from __future__ import annotations

import pytest
import torch

from crmnet.data.encoding import encode, onehot
from crmnet.interpret.attribution import sequence_onehot
from crmnet.models import build_model
from crmnet.models.adapter import ACGTAdapter

pytestmark = pytest.mark.usefixtures("one_thread")


def _sequences(rng, lengths):
    return ["".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=n)) for n in lengths]


# Layouts covered: CRMnet (N channel first, pad/truncate at the end), Vaishnav (ACGT, pad/truncate at the
# start), LegNet (40-nt prefix, N = 0.25) and LegNet as released (AGCT, trim 17, 150-nt plasmid flank).
@pytest.mark.parametrize("name", ["crmnet-tiny", "vaishnav-cnn", "legnet", "legnet-released"])
def test_adapter_matches_model_on_its_own_encoding(name, rng):
    torch.manual_seed(0)
    model = build_model(name).eval()
    lengths = [110, 96, 121, 80]  # shorter and longer than every model's input
    seqs = _sequences(rng, lengths)
    with torch.no_grad():
        expected = model(onehot(torch.as_tensor(encode(seqs, model.encoding)[0]), model.encoding))
        adapter = ACGTAdapter(model)
        mixed = adapter(torch.as_tensor(sequence_onehot(seqs)), torch.as_tensor(lengths))
        alone = torch.cat([adapter(torch.as_tensor(sequence_onehot([s]))) for s in seqs])
    assert mixed.shape == (4, 1)
    torch.testing.assert_close(mixed[:, 0], expected, rtol=0, atol=0)
    torch.testing.assert_close(alone[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_constant_positions_get_no_gradient(rng):
    torch.manual_seed(0)
    model = build_model("legnet-released").eval()
    x = torch.as_tensor(sequence_onehot(_sequences(rng, [60]))).requires_grad_(True)
    (grad,) = torch.autograd.grad(ACGTAdapter(model)(x).sum(), x)
    # The first 17 bases are trimmed (the adapter position): the model never reads them.
    assert not grad[..., :17].any()
    assert grad[..., 17:].abs().sum(0).gt(0).all()


def test_model_coordinates_map_channels_only(rng):
    torch.manual_seed(0)
    model = build_model("crmnet-tiny").eval()
    codes, _ = encode(_sequences(rng, [112, 112]), model.encoding)
    x_model = onehot(torch.as_tensor(codes), model.encoding)
    x_acgt = x_model[:, 1:]  # NACGT -> ACGT; an N is an all-zero column
    with torch.no_grad():
        torch.testing.assert_close(ACGTAdapter(model, "model")(x_acgt)[:, 0], model(x_model))
    with pytest.raises(ValueError, match="112 positions"):
        ACGTAdapter(model, "model")(x_acgt[..., :100])
    with pytest.raises(ValueError, match="coordinates"):
        ACGTAdapter(model, "sequences")


def test_works_with_tangermeme_directly(rng):
    from tangermeme.predict import predict

    torch.manual_seed(0)
    model = build_model("vaishnav-cnn").eval()
    seqs = _sequences(rng, [110] * 3)
    expected = model(onehot(torch.as_tensor(encode(seqs, model.encoding)[0]), model.encoding))
    got = predict(ACGTAdapter(model), torch.as_tensor(sequence_onehot(seqs)), device="cpu", verbose=False)
    torch.testing.assert_close(got[:, 0], expected.detach())
