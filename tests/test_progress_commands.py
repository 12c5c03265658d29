"""Every long command reports progress when standard error is not a terminal (CI, nohup, a web job):
periodic ``desc: ... at RATE unit/s`` lines through crmnet.progress, silenced by --quiet."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.evaluation.predict import FileProgress
from crmnet.models.checkpoint import save_checkpoint
from crmnet.models.registry import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = r"at [\d,]+\.\d (\w+)/s"


@pytest.fixture(autouse=True)
def every_update(monkeypatch):
    """A log line on every update, so tiny inputs show their lines."""
    monkeypatch.setenv("CRMNET_PROGRESS_INTERVAL", "0")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "tiny.ckpt"
    save_checkpoint(path, build_model("crmnet-tiny"))
    return path


def _sequences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=110)) for _ in range(n)]


def _lines(err: str, desc: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(desc)]


def test_predict_logs_sequences_and_rate_per_batch_and_quiet_silences(tmp_path, ckpt, capsys):
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(_sequences(40))))
    argv = ["predict", str(fasta), "--checkpoint", str(ckpt), "--batch-size", "8", "--chunk-size", "16"]
    assert main([*argv, "--out", str(tmp_path / "a.tsv")]) == 0
    err = capsys.readouterr().err
    lines = _lines(err, "predict:")
    assert len(lines) >= 5  # one per batch of 8: 40 sequences
    # sequences done of the total estimated from the bytes read so far, their rate and an ETA (never bytes)
    assert re.match(r"predict: \d+% 8/\d+ sequences at", lines[0]) and "ETA" in lines[0]
    assert re.search(RATE, lines[0]).group(1) == "sequences"
    assert lines[-1].startswith("predict: 100% 40/40 sequences") and lines[-1].endswith("(done)")
    assert "note: 40 sequences encoded for the model's input of 112 nt; 40 of 110 nt were padded" in err
    assert main([*argv, "--out", str(tmp_path / "b.tsv"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert not _lines(err, "predict") and "note: 40 sequences" in err
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()


def test_file_progress_moves_per_batch_whatever_the_chunk(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"A" * 1000)
    with FileProgress(path, "work") as meter:
        meter.on_raw(500)  # a reader read half the file for the first chunk
        meter.chunk(10)
        assert meter.bar.total == 20  # 10 records in 500 of 1,000 bytes: about 20 in all
        seen = []
        for _ in range(5):
            meter.done(2)
            seen.append(meter.bar.n)
        meter.on_raw(500)
        meter.chunk(4)
        assert meter.bar.total == 14
        meter.done(4)
    assert seen == [2, 4, 6, 8, 10] and meter.records == 14 and meter.bar.total == 14


def test_evaluate_logs_each_prediction_and_score_and_quiet_silences(tmp_path, ckpt, capsys):
    seqs = _sequences(30, seed=1)
    test = tmp_path / "mytest.csv"
    test.write_text("sequence,Measured Expression\n" + "".join(f"{s},{i % 7}\n" for i, s in enumerate(seqs)))
    argv = ["evaluate", "--checkpoint", str(ckpt), "--test", str(test), "--bootstrap", "20", "--batch-size", "8",
            "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    predicted = _lines(err, "predict mytest:")
    assert len(predicted) >= 4 and re.search(RATE, predicted[0]).group(1) == "seq" and "ETA" in predicted[0]
    assert "30/30 seq" in predicted[-1] and predicted[-1].endswith("(done)")
    scored = _lines(err, "evaluate:")
    assert scored and re.search(RATE, scored[0]).group(1) == "step" and "1/1 step" in scored[-1]
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert not _lines(err, "predict") and not _lines(err, "evaluate:")


def test_evaluate_and_report_log_comparisons(tmp_path, capsys):
    seqs = _sequences(12, seed=2)
    test = tmp_path / "t.csv"
    test.write_text("sequence,Measured Expression\n" + "".join(f"{s},{i}\n" for i, s in enumerate(seqs)))
    files = []
    for k in range(3):
        f = tmp_path / f"m{k}.txt"
        f.write_text("".join(f"{s}\t{i + np.sin(i * (k + 1))}\n" for i, s in enumerate(seqs)))
        files.append(str(f))
    assert main(["evaluate", "--predictions", *files, "--test", str(test), "--bootstrap", "10",
                 "--out", str(tmp_path / "ev")]) == 0
    scored = _lines(capsys.readouterr().err, "evaluate:")
    assert "6/6 step" in scored[-1]  # 3 scores, then 3 pairs compared
    assert main(["report", str(tmp_path / "ev"), "--bootstrap", "10", "--out", str(tmp_path / "rep")]) == 0
    compared = _lines(capsys.readouterr().err, "compare:")
    # the run (the first file) against each of the other two
    assert compared and re.search(RATE, compared[0]).group(1) == "pair" and "2/2 pair" in compared[-1]


def test_design_commands_log_progress(tmp_path, ckpt, capsys):
    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">q{i}\n{s}\n" for i, s in enumerate(_sequences(3, seed=3))))
    assert main(["mutagenesis", str(fasta), "--out", str(tmp_path / "m"), "--figures", "0", "--window", "20-23",
                 "--chunk-size", "1", "--no-tsv", "--checkpoint", str(ckpt)]) == 0
    lines = _lines(capsys.readouterr().err, "mutagenesis:")
    assert len(lines) >= 3 and lines[-1].startswith("mutagenesis: 100% 3/3 sequences")
    assert main(["evolve", str(fasta), "--out", str(tmp_path / "e"), "--generations", "3",
                 "--checkpoint", str(ckpt)]) == 0
    lines = _lines(capsys.readouterr().err, "evolve (sswm):")
    assert re.search(RATE, lines[-1]).group(1) == "generation" and "3/3 generation" in lines[-1]
    assert main(["evolve", str(fasta), "--out", str(tmp_path / "q"), "--generations", "2", "--quiet",
                 "--checkpoint", str(ckpt)]) == 0
    assert not _lines(capsys.readouterr().err, "evolve (")


def test_a_silent_bar_stays_silent_when_its_interval_passes(capsys):
    from crmnet.progress import progress

    with progress(total=3, desc="quiet", enable=False) as bar:  # the interval is 0 here: it passes every update
        bar.update(1)
        bar.set_description_str("still quiet")
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_a_failed_command_ends_with_its_error_not_a_done_line(tmp_path, ckpt, capsys):
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(_sequences(20))) + ">bad\nACGTX\n")
    assert main(["predict", str(fasta), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.tsv"),
                 "--batch-size", "8", "--chunk-size", "8"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "(done)" not in "\n".join(err) and err[-1].startswith("crmnet: error: ")
    assert "invalid character 'X' at position 5" in err[-1] and err[-1].endswith("pass --invalid N to map them to N)")
    assert re.match(r"predict: \d+% 8/\d+ sequences", err[0])  # the progress before the failure is kept
