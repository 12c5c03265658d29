"""Evaluation on the real test sets: data.md's reference table from the shared files, joins, outputs, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from crmnet.cli import main
from crmnet.data.catalogue import TEST_SETS
from crmnet.data.encoding import CRMNET, VAISHNAV, Encoding
from crmnet.errors import InputError
from crmnet.evaluation.evaluate import Evaluation, evaluate_model, evaluate_prediction_file, peer_table
from crmnet.evaluation.metrics import METRIC_KEYS, compute_metrics
from crmnet.evaluation.outputs import read_predictions_tsv, write_evaluation
from crmnet.evaluation.testsets import LoadedTest, load_test_file, load_test_set, resolve_test

# data.md, "Reference numbers measured from these files": (Pearson r, MSE, N).
REFERENCE = {
    "Vaishnav transformer": {"complex-native": (0.9608, 1.327, 3733), "complex-random": (0.9776, 1.4252, 2954),
                             "defined-native": (0.9499, 1.697, 3782), "defined-random": (0.9685, 0.952, 5289)},
    "Vaishnav CNN": {"complex-native": (0.9480, 1.500, 3733), "complex-random": (0.9796, 1.167, 2954),
                     "defined-native": (0.9309, 2.568, 3782), "defined-random": (0.9685, 1.413, 5289)},
    "DeepSEA (adapted)": {"complex-native": (0.8998, 2.671, 3733), "complex-random": (0.9530, 2.194, 2954)},
    "DanQ (adapted)": {"complex-native": (0.9162, 2.351, 3733), "complex-random": (0.9632, 1.642, 2954)},
    "DeepATT (adapted)": {"complex-native": (0.9102, 2.262, 3733), "complex-random": (0.9582, 1.721, 2954)},
    # data.md prints 1.731 for LegNet defined native: the MSE is 1.73047, i.e. 1.7305 rounded a second time.
    "LegNet": {"complex-native": (0.9712, 1.248, 3733), "defined-native": (0.9638, 1.7305, 3782)},
}


def _decimals(x: float) -> int:
    text = f"{x}"
    return len(text.split(".")[1]) if "." in text else 0


@pytest.fixture(scope="module")
def peers(shared):
    return peer_table(shared / "data", n_boot=0)


def test_peer_table_reproduces_data_md(peers):
    assert set(peers.metrics) == set(REFERENCE)
    for model, row in REFERENCE.items():
        assert set(peers.metrics[model]) == set(row), model
        for test, (r, mse, n) in row.items():
            m = peers.metrics[model][test]
            assert m["n"] == n, (model, test)
            assert round(m["pearson_r"], 4) == pytest.approx(r, abs=1e-12), (model, test, m["pearson_r"])
            # MSE to the precision data.md gives (3 or 4 decimals), half a unit of the last digit.
            assert abs(m["mse"] - mse) <= 0.5 * 10 ** -_decimals(mse) + 1e-12, (model, test, m["mse"])


def test_paper_r_squared_versus_coefficient_of_determination(peers):
    # data.md: the paper's "R²" is r² (0.9557 for the transformer on complex random); 1 − SS_res/SS_tot is 0.9149.
    m = peers.metrics["Vaishnav transformer"]["complex-random"]
    assert m["pearson_r_squared"] == pytest.approx(0.9557, abs=5e-5)
    assert m["r2"] == pytest.approx(0.9149, abs=5e-5)


def test_legnet_is_joined_by_sequence(peers):
    info = peers.info["models"]["LegNet"]["tests"]
    for test, n in (("complex-native", 3733), ("defined-native", 3782)):
        assert info[test]["matched"] == n
        assert info[test]["unmatched_prediction_rows"] == 196
        assert info[test]["duplicate_prediction_rows"] == 0


def test_test_sets_resolve_with_raw_sequences(vaishnav_dir):
    root = vaishnav_dir.parent
    sizes = {"complex-native": 3733, "complex-random": 2954, "defined-native": 3782, "defined-random": 5289}
    for name, n in sizes.items():
        t = load_test_set(name, root)
        assert len(t) == n == len(t.measured) == len(t.keys)
        assert t.sequence_column == TEST_SETS[name].sequence_column
    rnd = load_test_set("complex-random", root)
    lengths = np.array([len(s) for s in rnd.sequences])
    assert lengths.min() < 110 < lengths.max() and "N" not in "".join(rnd.sequences)
    # The join key is Vaishnav's layout, i.e. the N-padded column of Random_complex.csv.
    with open(vaishnav_dir / "test" / "Random_complex.csv") as fh:
        padded = [row["sequence"] for row in csv.DictReader(fh)]
    assert rnd.keys == padded
    # CRMnet's and Vaishnav's conventions differ for every raw sequence that is not 110 nt: ≈19 %.
    assert (lengths != 110).sum() == 574


def test_unknown_test_and_missing_data_are_clear(tmp_path):
    with pytest.raises(InputError, match="unknown test set 'complex'"):
        load_test_set("complex", tmp_path)
    with pytest.raises(InputError, match="not found .*crmnet download"):
        load_test_set("complex-native", tmp_path)
    with pytest.raises(InputError, match="neither a test set"):
        resolve_test("nope.csv", tmp_path)


class GCModel(nn.Module):
    """Hand-set model: prediction = fraction of G/C among the input positions. x: (B, C, L) → (B,)."""

    def __init__(self, encoding: Encoding):
        super().__init__()
        self.encoding = encoding
        w = torch.tensor([float(c in "CG") for c in encoding.channels])
        self.w = nn.Parameter(w / encoding.length)

    def forward(self, x):
        return torch.einsum("bcl,c->b", x, self.w)


@pytest.mark.parametrize("enc", [CRMNET, VAISHNAV], ids=["crmnet", "vaishnav"])
def test_evaluate_model_feeds_raw_sequences_in_the_models_encoding(vaishnav_dir, enc):
    test = load_test_set("complex-random", vaishnav_dir.parent)
    ev = evaluate_model(GCModel(enc), [test], label="gc", n_boot=0)
    kept = [s[: enc.length] if enc.truncate == "end" else s[-enc.length :] for s in test.sequences]
    expected = np.array([(k.count("G") + k.count("C")) / enc.length for k in kept])
    np.testing.assert_allclose(ev.predictions["gc"]["complex-random"], expected, rtol=1e-5)
    # float32 predictions: compare with the metrics of the float32 values (Spearman's ties depend on it).
    got = ev.predictions["gc"]["complex-random"]
    assert ev.metrics["gc"]["complex-random"] == pytest.approx(compute_metrics(test.measured, got), rel=1e-12)
    assert ev.metrics["gc"]["complex-random"]["pearson_r"] == pytest.approx(
        compute_metrics(test.measured, expected)["pearson_r"], abs=1e-6)
    info = ev.info["models"]["gc"]["tests"]["complex-random"]
    lengths = np.array([len(s) for s in test.sequences])
    assert info["truncated"] == (lengths > enc.length).sum()
    assert info["padded"] == (lengths < enc.length).sum()
    assert ev.info["models"]["gc"]["encoding"] == enc.to_dict()


def test_prediction_file_needs_a_test_without_measurements(shared):
    with pytest.raises(InputError, match="--test"):
        evaluate_prediction_file(shared / "data" / "legnet2023" / "complex_Native.txt", None, label="x")


def test_prediction_file_joined_to_the_wrong_test_is_refused(shared, vaishnav_dir):
    wrong = load_test_set("defined-native", vaishnav_dir.parent)
    with pytest.raises(InputError, match="measured values differ"):
        evaluate_prediction_file(vaishnav_dir / "peer_predictions" / "Native_complex_tpu_model.csv", wrong,
                                 label="tpu", n_boot=0)


def test_written_outputs_round_trip(tmp_path, vaishnav_dir):
    ev = Evaluation()
    test = load_test_set("complex-native", vaishnav_dir.parent)
    evaluate_prediction_file(vaishnav_dir / "peer_predictions" / "Native_complex_gpu_model.csv", test, ev,
                             label="cnn", n_boot=50)
    evaluate_prediction_file(vaishnav_dir / "peer_predictions" / "Native_complex_tpu_model.csv", test, ev,
                             label="transformer", n_boot=50)
    ev.compare(n_boot=50)
    out = write_evaluation(ev, tmp_path / "run", {"command": "test"})
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["complex-native"] and ev.primary == "cnn"
    assert set(METRIC_KEYS) <= set(metrics["complex-native"])
    assert metrics["complex-native"]["bootstrap"]["n_boot"] == 50
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[0]["pearson_r"]) == pytest.approx(0.9480, abs=5e-5)
    assert float(rows[0]["pearson_r_lo"]) < float(rows[0]["pearson_r"]) < float(rows[0]["pearson_r_hi"])
    assert set(json.loads((out / "peers.json").read_text())) == {"cnn", "transformer"}
    comp = json.loads((out / "comparisons.json").read_text())
    assert len(comp) == 1 and comp[0]["delta_r"] == pytest.approx(0.9480 - 0.9608, abs=1e-4)
    measured, preds = read_predictions_tsv(out / "predictions" / "complex-native.tsv")
    np.testing.assert_allclose(measured, test.measured, rtol=1e-14)
    assert compute_metrics(measured, preds["transformer"])["pearson_r"] == pytest.approx(0.9608, abs=5e-5)
    with pytest.raises(FileExistsError):
        write_evaluation(ev, tmp_path / "run", {})
    short = tmp_path / "short.tsv"
    short.write_text("id\tsequence\tmeasured\tcnn\n1\tACGT\t1.5\n")
    with pytest.raises(InputError, match="3 columns, expected 4") as exc:
        read_predictions_tsv(short)
    assert exc.value.line == 2


def test_cli_evaluate_predictions_and_peers(tmp_path, shared, capsys):
    data = shared / "data"
    legnet = data / "legnet2023" / "complex_Native.txt"
    rc = main(["evaluate", "--predictions", str(legnet), "--test", "complex-native", "--data-dir", str(data),
               "--out", str(tmp_path / "legnet"), "--bootstrap", "0", "--label", "LegNet"])
    assert rc == 0
    m = json.loads((tmp_path / "legnet" / "metrics.json").read_text())["complex-native"]
    assert (round(m["pearson_r"], 4), m["n"]) == (0.9712, 3733)
    config = json.loads((tmp_path / "legnet" / "config.json").read_text())
    assert config["models"]["LegNet"]["tests"]["complex-native"]["unmatched_prediction_rows"] == 196
    assert "3733 sequences matched, 196 prediction rows without a measurement" in capsys.readouterr().err

    rc = main(["evaluate", "--peers", "--test", "complex-random", "--data-dir", str(data),
               "--out", str(tmp_path / "peers"), "--bootstrap", "200"])
    assert rc == 0
    assert not (tmp_path / "peers" / "metrics.json").exists()
    table = json.loads((tmp_path / "peers" / "peers.json").read_text())
    assert round(table["Vaishnav transformer"]["complex-random"]["pearson_r"], 4) == 0.9776
    comps = json.loads((tmp_path / "peers" / "comparisons.json").read_text())
    assert len(comps) == 10  # 5 models on complex random, every pair
    cnn_vs_deepsea = next(c for c in comps if {c["model_a"], c["model_b"]} == {"Vaishnav CNN", "DeepSEA (adapted)"})
    assert cnn_vs_deepsea["steiger_p"] < 1e-10 and cnn_vs_deepsea["bootstrap_p"] < 0.01

    assert main(["evaluate", "--peers", "--data-dir", str(data), "--out", str(tmp_path / "peers")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "--out", str(tmp_path / "x")]) == 2
    assert "nothing to score" in capsys.readouterr().err


def test_cli_evaluate_checkpoint(tmp_path, vaishnav_dir):
    from crmnet.models import checkpoint, registry

    torch.manual_seed(0)
    model = registry.build_model("crmnet-tiny")
    ckpt = tmp_path / "m.pt"
    checkpoint.save_checkpoint(ckpt, model)
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--test", "complex-random", "--data-dir",
               str(vaishnav_dir.parent), "--out", str(tmp_path / "run"), "--bootstrap", "0", "--batch-size", "512"])
    assert rc == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["complex-random"]["n"] == 2954
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["models"][config["primary"]]["encoding"] == model.encoding.to_dict()


def test_user_test_file_and_prediction_tsv_join(tmp_path, capsys):
    test_file = tmp_path / "mytest.csv"
    test_file.write_text(",sequence,Measured Expression\n0,ACGTACGT,1.0\n1,GGGGCCCC,2.0\n2,TTTTAAAA,3.0\n"
                         "3,ACACACAC,5.0\n")
    preds = tmp_path / "preds.txt"  # sequence<TAB>prediction, other order, one unknown and lower case
    preds.write_text("ttttaaaa\t2.5\nACGTACGT\t1.5\nGGGGCCCC\t1.5\nCCCCCCCC\t9.0\nACACACAC\t5.5\n")
    rc = main(["evaluate", "--predictions", str(preds), "--test", str(test_file), "--out", str(tmp_path / "o"),
               "--bootstrap", "0"])
    assert rc == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["mytest"]
    coverage, duplicates = m.pop("coverage"), m.pop("duplicates")
    assert m.pop("multimodality")["method"] == "mixture"
    assert m == pytest.approx(compute_metrics([1.0, 2.0, 3.0, 5.0], [1.5, 1.5, 2.5, 5.5]))
    assert coverage == {"test_rows": 4, "scored_rows": 4, "fraction": 1.0, "partial_allowed": False}
    assert duplicates["prediction_rows_repeating_a_sequence"] == 0 and "every test row" in duplicates["policy"]
    assert "4 sequences matched, 1 prediction rows without a measurement" in capsys.readouterr().err


def test_too_few_matched_rows_is_an_input_error(tmp_path):
    seqs = ["ACGT", "TTTT"]
    test = LoadedTest("tiny", tmp_path / "tiny.csv", seqs, seqs, np.array([1.0, 2.0]), [2, 3])
    with pytest.raises(InputError, match="cannot score 'm'.*at least 3 pairs"):
        Evaluation().add("m", test, np.array([1.0, 2.5]), n_boot=0, seed=0)


def test_several_prediction_files_keep_their_own_label_and_row(tmp_path, vaishnav_dir, capsys):
    peers = vaishnav_dir / "peer_predictions"
    files = [str(peers / "Native_complex_tpu_model.csv"), str(peers / "Native_complex_DeepAtt_model.csv")]
    args = ["evaluate", "--predictions", *files, "--test", "complex-native", "--data-dir", str(vaishnav_dir.parent),
            "--bootstrap", "0"]
    assert main([*args, "--out", str(tmp_path / "two")]) == 0
    table = json.loads((tmp_path / "two" / "peers.json").read_text())
    assert round(table["Native_complex_tpu_model"]["complex-native"]["pearson_r"], 4) == 0.9608
    assert round(table["Native_complex_DeepAtt_model"]["complex-native"]["pearson_r"], 4) == 0.9102
    assert json.loads((tmp_path / "two" / "config.json").read_text())["primary"] == "Native_complex_tpu_model"
    out = capsys.readouterr().out
    assert "R² (coefficient of determination)" in out and "pearson_r_squared (r²)" in out
    # One label for two files on one test set would overwrite one with the other: refused, nothing written.
    assert main([*args, "--label", "same", "--out", str(tmp_path / "one")]) == 2
    assert "'same' is already scored on 'complex-native'" in capsys.readouterr().err
    assert not (tmp_path / "one").exists()
    assert main([*args, "--label", "a", "b", "c", "--out", str(tmp_path / "three")]) == 2


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_duplicate_policy_is_the_same_joined_or_alone(tmp_path):
    # The test repeats ACGTACGT (two measurements): both rows are scored, with the one prediction of the sequence.
    test = _write(tmp_path / "t.csv", ",sequence,Measured Expression\n0,ACGTACGT,1.0\n1,GGGGCCCC,2.0\n"
                                      "2,ACGTACGT,1.4\n3,TTTTAAAA,3.0\n4,ACACACAC,5.0\n")
    preds = _write(tmp_path / "p.txt", "ACGTACGT\t1.5\nGGGGCCCC\t1.5\nTTTTAAAA\t2.5\nACACACAC\t5.5\nacgtacgt\t1.5\n")
    assert main(["evaluate", "--predictions", preds, "--test", test, "--out", str(tmp_path / "j"),
                 "--bootstrap", "0"]) == 0
    m = json.loads((tmp_path / "j" / "metrics.json").read_text())["t"]
    assert m["n"] == 5 and m["coverage"]["scored_rows"] == 5
    assert m["duplicates"]["test_rows_repeating_a_sequence"] == 1
    assert m["duplicates"]["prediction_rows_repeating_a_sequence"] == 1
    assert m["pearson_r"] == pytest.approx(compute_metrics([1.0, 2.0, 1.4, 3.0, 5.0], [1.5, 1.5, 1.5, 2.5, 5.5])[
        "pearson_r"])
    # Scored alone, the same rows (with their own predictions) give the same n.
    alone = _write(tmp_path / "alone.csv", "sequence,Measured Expression,Predicted Expression\nACGTACGT,1.0,1.5\n"
                                           "GGGGCCCC,2.0,1.5\nACGTACGT,1.4,1.5\nTTTTAAAA,3.0,2.5\nACACACAC,5.0,5.5\n")
    assert main(["evaluate", "--predictions", alone, "--out", str(tmp_path / "a"), "--bootstrap", "0"]) == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["alone"]["n"] == 5
    # One sequence, two different predictions: ambiguous, an error naming the line.
    clash = _write(tmp_path / "clash.txt", "ACGTACGT\t1.5\nGGGGCCCC\t1.5\nACGTACGT\t9.0\n")
    with pytest.raises(InputError, match=r"clash.txt:3: sequence repeated with a different prediction.*line 1"):
        evaluate_prediction_file(clash, load_test_file(test), label="x", n_boot=0)


def test_partial_coverage_is_an_error_unless_allowed(tmp_path, vaishnav_dir, capsys):
    rows = (vaishnav_dir / "peer_predictions" / "Random_complex_tpu_model.csv").read_text().splitlines()
    part = _write(tmp_path / "part.csv", "\n".join(rows[:1001]) + "\n")  # 1,000 of 2,954 rows
    args = ["evaluate", "--predictions", part, "--test", "complex-random", "--data-dir", str(vaishnav_dir.parent),
            "--bootstrap", "0"]
    assert main([*args, "--out", str(tmp_path / "no")]) == 2
    assert "cover 1,000 of the 2,954 rows of test set 'complex-random' (33.9%); pass --allow-partial" in \
        capsys.readouterr().err
    assert main([*args, "--allow-partial", "--out", str(tmp_path / "yes")]) == 0
    m = json.loads((tmp_path / "yes" / "metrics.json").read_text())["complex-random"]
    assert m["n"] == 1000 and m["coverage"] == {"test_rows": 2954, "scored_rows": 1000,
                                                "fraction": pytest.approx(1000 / 2954), "partial_allowed": True}


def test_named_columns_read_any_table(tmp_path, capsys):
    # Vaishnav et al.'s full tables name measurements meanEL and their model's predictions edvPred.
    tsv = _write(tmp_path / "vaishnav.tsv", "seq110\texpt\tmeanEL\tedvPred\nACGTACGT\tx\t1.0\t1.1\n"
                                            "GGGGCCCC\tx\t2.0\t2.4\nTTTTAAAA\tx\t3.0\t2.7\nACACACAC\tx\t5.0\t4.0\n")
    base = ["evaluate", "--predictions", tsv, "--bootstrap", "0"]
    assert main([*base, "--out", str(tmp_path / "no")]) == 2
    assert "no predicted values" in capsys.readouterr().err
    assert main([*base, "--measured-column", "meanEL", "--predicted-column", "edvPred", "--out",
                 str(tmp_path / "o")]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["vaishnav"]
    assert m["pearson_r"] == pytest.approx(compute_metrics([1, 2, 3, 5], [1.1, 2.4, 2.7, 4.0])["pearson_r"])
    assert main([*base, "--predicted-column", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "vaishnav.tsv:1: no predicted column 'nope'" in capsys.readouterr().err


def test_published_predictions_are_refused_as_a_test_set(tmp_path, shared, capsys):
    legnet = str(shared / "data" / "legnet2023" / "complex_Native.txt")
    assert main(["evaluate", "--predictions", legnet, "--test", legnet, "--out", str(tmp_path / "o")]) == 2
    assert "published predictions (legnet2023/complex_Native.txt" in capsys.readouterr().err


def test_describe_encoding_names_the_trim_and_the_plasmid_flank():
    from crmnet.data.encoding import CRMNET, Encoding
    from crmnet.evaluation.evaluate import describe_encoding

    assert describe_encoding(CRMNET) == "112 nt, the first 112 nt kept, N padding at the end, channels NACGT"
    legnet = Encoding(length=150, pad="start", truncate="start", channels="AGCT", unknown_fill=0.25, trim_start=17,
                      flank="ACGT" * 37 + "AC")
    assert describe_encoding(legnet) == ("150 nt, the first 17 nt of each sequence dropped, the last 150 nt kept, "
                                         "padded at the start with the model's 150-nt plasmid flank, channels AGCT")
