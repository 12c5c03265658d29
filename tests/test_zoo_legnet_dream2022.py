"""legnet-dream2022: LegNet's DREAM 2022 configuration imported from a fixture built with the authors' code.

tests/fixtures/legnet_dream2022 (see its README): the authors' SeqNN with the DREAM 2022 test.sh arguments,
seeded random weights saved in their state_dict format, and their test.py's inputs and written predictions
for 40 DREAM test sequences and 24 training-format lines (12 with integer measurements: singleton flag 1).
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.data.encoding import encode, onehot
from crmnet.models.checkpoint import load_checkpoint
from crmnet.models.legnet import singleton_flags

FIXTURE = Path(__file__).parent / "fixtures" / "legnet_dream2022"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from crmnet.fsutil import file_digest
    from crmnet.zoo.importer import import_model

    tmp = tmp_path_factory.mktemp("legnet_dream")
    pth = tmp / "model_80.pth"
    pth.write_bytes(lzma.decompress((FIXTURE / "model_80.pth.xz").read_bytes()))
    assert file_digest(pth) == "8fd36b6e1c379e68b953bdada4318fa53a7496e177fa7967db1657a9753aadd1"
    ckpt = import_model(pth, tmp / "legnet-dream2022.pt", name="legnet-dream2022")
    return load_checkpoint(ckpt), np.load(FIXTURE / "reference_io.npz")


def _x(model, sequences) -> torch.Tensor:
    codes, _ = encode(list(sequences), model.encoding)
    return onehot(torch.from_numpy(codes), model.encoding)


def test_encoding_equals_test_py_inputs(imported):
    model, ref = imported
    x = _x(model, ref["sequences"])
    assert torch.equal(x, torch.from_numpy(ref["inputs_forward"][:, :4]))
    assert torch.equal(model.inputs(x, 0.0, torch.from_numpy(ref["singleton"])), torch.from_numpy(ref["inputs_forward"]))


def test_singleton_rule_is_test_pys(imported):
    _, ref = imported
    assert torch.equal(singleton_flags(ref["bins"]), torch.from_numpy(ref["singleton"]))
    assert ref["singleton"].sum() == 12


def test_predictions_with_the_singleton_rule_within_1e5(imported):
    model, ref = imported
    x = _x(model, ref["sequences"])
    flags = singleton_flags(ref["bins"])
    with torch.inference_mode():
        logits = model.logits(x, singleton=flags)
        pred = model.strand_average(x, singleton=flags).double().numpy()
    np.testing.assert_allclose(logits.log_softmax(-1).numpy(), ref["logprobs_forward"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(pred, ref["prediction"], atol=1e-5, rtol=0)


def test_crmnet_predict_is_test_py_for_test_sequences(imported):
    """crmnet predicts with singleton 0: test.py's value for every non-integer measurement, e.g. the test set."""
    from crmnet.evaluation.predict import predict

    model, ref = imported
    pred = predict(model, list(ref["sequences"]), batch_size=16)
    zero = ref["singleton"] == 0
    np.testing.assert_allclose(pred[zero], ref["prediction"][zero], atol=1e-5, rtol=0)
    # the flag matters: on the 12 integer rows test.py's values differ from the flag-0 predictions
    assert np.abs(pred[~zero] - ref["prediction"][~zero]).min() > 1e-3


def test_catalogued_and_downloadable():
    from crmnet.data.catalogue import MODEL_FILES, SOURCES
    from crmnet.zoo.catalogue import RELEASED, parameters

    f = MODEL_FILES["legnet-dream2022"]
    assert f.path == "models/dream2022/model_80.pth" and f.digest == "7d314e2f2f9bb1aba4a5a91d4598f687df12e3ce"
    assert SOURCES["legnet-dream2022"].checkpoint and parameters(RELEASED["legnet-dream2022"].model) == 1_852_846
