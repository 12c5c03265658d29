"""The second hostile audit (issue 24): nothing lost, nothing outside --out, limits first, one line.

The class fixes are tested over every registered subcommand, enumerated from the parser, so a command
added later is covered without editing this file: each declares its inputs and outputs
(:mod:`crmnet.cli.options`), and an output that is, holds or lies inside an input is refused before any
work. The single cases of the issue follow, table-driven where they share a shape; every refusal checks
exit status 2, one line naming the option or file, and the file system unchanged (``refused``).
"""
# ruff: noqa: F811 - the fixtures ``work`` and ``checkpoint`` come from test_hostile_data

from __future__ import annotations

import argparse
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crmnet.cli import build_parser, main
from crmnet.cli.options import declared, device_type
from crmnet.errors import InputError, OutputError
from crmnet.fsutil import atomic_file, atomic_path, safe_component
from test_hostile_data import FILES, ROOT, checkpoint, refused, snapshot, work  # noqa: F401 - fixtures

NO_INPUTS = {"download", "quickstart"}  # commands that write but read no file of the user's


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, argparse.ArgumentParser] = {}
    for name, parser in sub.choices.items():
        if parser not in out.values():  # aliases (import-keras) once
            out[name] = parser
    return out


COMMANDS = _commands()


def _declared(parser) -> tuple[list[str], list[str]]:
    return declared(argparse.Namespace(**{k: parser.get_default(k) for k in ("crmnet_inputs", "crmnet_outputs")}))


WRITERS = {name: p for name, p in COMMANDS.items() if _declared(p)[1]}
PATH_DESTS = {"checkpoint", "input", "inputs", "path", "store", "init", "config", "sequences", "meme", "truth",
              "attributions", "pairs", "deltas", "models_dir", "data_dir", "teacher", "predictions", "test", "out",
              "data", "members", "orthologs", "start", "divergence"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_declares_the_files_it_reads_and_writes(command):
    parser = COMMANDS[command]
    inputs, outputs = _declared(parser)
    for action in parser._actions:
        if action.dest in PATH_DESTS:
            assert action.dest in inputs + outputs, f"{command}: {action.dest} is neither a declared input nor output"
    if outputs and command not in NO_INPUTS:
        assert inputs, f"{command} writes {outputs} but declares no input"


def _argv(parser, value: str, inputs: list[str], only: str | None = None) -> list[str]:
    """Arguments that parse: every required option filled, inputs (or only ``only``) and outputs = ``value``."""
    _, outputs = _declared(parser)
    argv: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in ("crmnet_inputs", "crmnet_outputs"):
            continue
        ours = action.dest in outputs or (action.dest in inputs and (only is None or action.dest == only))
        if not (ours or action.required):
            continue
        if ours:
            text = value
        elif action.choices:
            text = next(iter(action.choices))
        else:
            text = "1" if action.type in (int, float) or getattr(action.type, "__name__", "") in ("integer",
                                                                                              "number") else "x"
        argv += [text] if not action.option_strings else [action.option_strings[0], text]
    for group in parser._mutually_exclusive_groups:  # a required choice (--data or --pairs): the first one
        if group.required and not any(set(a.option_strings) & set(argv) for a in group._group_actions):
            first = group._group_actions[0]
            argv += [first.option_strings[0], value if first.dest in inputs and only in (None, first.dest) else "x"]
    if any("--overwrite" in a.option_strings for a in parser._actions):
        argv.append("--overwrite")
    return argv


def _input_cases():
    for command, parser in WRITERS.items():
        for dest in _declared(parser)[0]:
            yield pytest.param(command, dest, id=f"{command}-{dest}")


@pytest.mark.parametrize(("command", "dest"), list(_input_cases()))
def test_no_command_writes_onto_into_or_over_an_input(work, capsys, command, dest):
    """Each declared input, as a file, a symlink and a directory: --out on it, above it, inside it."""
    parser = COMMANDS[command]
    inputs = _declared(parser)[0]
    (work / "link.txt").symlink_to("train.txt")
    cases = {  # --out value, input value, expected words
        "is the input": ("train.txt", "train.txt", "is an input of this command"),
        "is the input through a symlink": ("train.txt", "link.txt", "is an input of this command"),
        "holds the input": ("indir", "indir/train.txt", "holds the input indir/train.txt"),
        "lies inside the input": ("indir/new", "indir", "lies inside the input directory indir"),
    }
    for out, given, words in cases.values():
        argv = [command, *_argv(parser, given, inputs, only=dest)]
        outs = _declared(parser)[1]
        argv = _replace_outputs(parser, argv, outs, out)
        refused(work, capsys, argv, f"{out}: {words}")


def _replace_outputs(parser, argv: list[str], outputs: list[str], value: str) -> list[str]:
    flags = {a.option_strings[0] for a in parser._actions if a.dest in outputs and a.option_strings}
    return [value if i and argv[i - 1] in flags else a for i, a in enumerate(argv)]


@pytest.mark.parametrize("command", WRITERS)
def test_no_output_is_the_working_directory_empty_or_a_file_named_dash(work, capsys, command):
    parser = COMMANDS[command]
    kinds = dict(parser.get_default("crmnet_outputs"))  # dest -> "file", "stdout" or "into"
    for out, words in ((".", "is the current directory"), ("..", "is the current directory"), ("", "is empty"),
                       ("-", "writes files, not standard output")):
        if (out == "-" and "stdout" in kinds.values()) or (out in (".", "..") and "into" in kinds.values()):
            continue
        argv = _replace_outputs(parser, [command, *_argv(parser, "placeholder", [])], _declared(parser)[1], out)
        refused(work, capsys, argv, words)


def test_prepare_inside_an_existing_store_cannot_replace_it(work, capsys, monkeypatch):
    """`prepare ../x.txt --out . --overwrite` from inside a store: refused, the store intact (was EBUSY)."""
    assert main(["prepare", "train.txt", "--out", "st", "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(work / "st")
    for out in (".", ""):
        refused(work, capsys, ["prepare", "../train.txt", "--out", out, "--overwrite", "--quiet"], "--out")


def test_predict_out_dash_is_standard_output(work, capsys):
    before = snapshot(work)
    assert main(["predict", "train.txt", "--checkpoint", "m.pt", "--out", "-", "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "id\tsequence\tprediction" and len(lines) == 51
    assert snapshot(work) == before  # no file named '-'


# --- names from files, and the writer's root -----------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("x/../../../somewhere/NAME", "x_.._.._.._somewhere_NAME"), ("..", "item"), ("", "item"),
    (".hidden", "hidden"), ("a\0b\nc", "a_b_c"), ("REB1", "REB1"), ("MA0363.2 REB1", "MA0363.2_REB1"),
    ("é" * 200, "item"),
])
def test_safe_component_is_one_visible_path_component(name, expected):
    assert safe_component(name) == expected
    assert "/" not in safe_component(name) and safe_component(name) not in (".", "..")


def test_the_atomic_writer_refuses_a_path_leaving_its_output_root(tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="leaves the output directory"), atomic_path(tmp_path / "out") as tmp:
        tmp.mkdir()
        with atomic_file(tmp / "fig5A_x" / ".." / ".." / "escape.txt") as fh:
            fh.write("never")
    assert snapshot(tmp_path) == before


MOTIF = "ACGTTGCA"


def _meme(name: str) -> str:
    rows = "\n".join(" ".join("0.97" if b == base else "0.01" for b in "ACGT") for base in MOTIF)
    return (f"MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\n"
            f"A 0.25 C 0.25 G 0.25 T 0.25\n\nMOTIF M1 {name}\nletter-probability matrix: alength= 4 w= {len(MOTIF)} "
            f"nsites= 20 E= 0\n{rows}\n")


@pytest.mark.slow
def test_interpret_keeps_a_hostile_motif_name_inside_out(work, capsys):
    """A MEME motif named x/../../../somewhere/NAME wrote its logo outside --out; now a safe name inside (~15 s)."""
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 36)) + MOTIF + "".join(rng.choice(list("ACGT"), 36)) for _ in range(6)]
    deep = work / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "seqs.txt").write_text("".join(f"{s}\t{i}.0\n" for i, s in enumerate(seqs)))
    (deep / "m.meme").write_text(_meme("x/../../../somewhere/NAME"))
    os.chdir(deep)
    before = snapshot(work)
    assert main(["interpret", "--checkpoint", str(work / "m.pt"), "--sequences", "seqs.txt", "--meme", "m.meme",
                 "--out", "io", "--quiet", "--device", "cpu"]) == 0, capsys.readouterr().err
    new = set(snapshot(work)) - set(before)
    assert new and all(p.startswith("a/b/io") for p in new), sorted(new)
    assert any("fig5A_x_.._.._.._somewhere_NAME.png" in p for p in new), sorted(new)


# --- limits checked first, stated in --help -----------------------------------------------------------

EVOLVE = ["evolve", "train.txt", "--checkpoint", "m.pt", "--out", "ev", "--quiet"]
MUTAGENESIS = ["mutagenesis", "train.txt", "--checkpoint", "m.pt", "--out", "mu", "--quiet"]
LIMITS = {
    "evolve seed -1": ([*EVOLVE, "--seed", "-1"], ["--seed", "between 0 and 4,294,967,295"]),
    "evolve 1e9 generations": ([*EVOLVE, "--generations", "1000000000"], ["--generations", "between 1 and 100,000"]),
    "GA population of 10 million": ([*EVOLVE, "--mode", "ga", "--population", "10000000"],
                                    ["--population", "between 1 and 100,000"]),
    "objective constant 1e309": ([*EVOLVE, "--objective", "A*1e309"], ["--objective", "inf"]),
    "objective that overflows": ([*EVOLVE, "--objective", "A" + "*1e12" * 27],
                                 ["--objective", "beyond a finite number"]),
    "mutation rate NaN": ([*EVOLVE, "--mutation-rate", "nan"], ["--mutation-rate", "finite"]),
    "GA target inf": ([*EVOLVE, "--target", "inf"], ["--target", "finite"]),
    "mutagenesis epsilon inf": ([*MUTAGENESIS, "--epsilon", "inf"], ["--epsilon", "finite"]),
    "mutagenesis epsilon 0": ([*MUTAGENESIS, "--epsilon", "0"], ["--epsilon", "> 0"]),
    "device tpu9": (["predict", "train.txt", "--checkpoint", "m.pt", "--out", "p.tsv", "--device", "tpu9"],
                    ["--device", "'tpu9' is not a torch device"]),
    "device meta": (["predict", "train.txt", "--checkpoint", "m.pt", "--out", "p.tsv", "--device", "meta"],
                   ["--device", "crmnet runs on cpu, cuda or mps"]),
    "simulate 1e12 sequences": (["simulate", "--n", "1000000000000", "--out", "s.txt"], ["--n", "100,000,000"]),
    "simulate seed 2**32": (["simulate", "--n", "10", "--seed", str(2**32), "--out", "s.txt"], ["--seed"]),
    "evaluate bootstrap -1": (["evaluate", "--predictions", "extra.tsv", "--out", "e", "--bootstrap", "-1"],
                              ["--bootstrap"]),
    "serve port 70000": (["serve", "--port", "70000"], ["--port", "between 0 and 65,535"]),
    "serve upload limit inf": (["serve", "--max-upload-mb", "inf"], ["--max-upload-mb", "finite"]),
    "export parity 0": (["export", "--checkpoint", "m.pt", "--format", "torchscript", "--out", "m.ts", "--parity",
                         "0"], ["--parity"]),
}


@pytest.mark.parametrize("case", LIMITS)
def test_limits_and_non_finite_numbers_are_refused_before_any_work(work, capsys, case):
    argv, expected = LIMITS[case]
    refused(work, capsys, argv, *expected)


def test_cuda_on_a_machine_without_it_is_one_line(work, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refused(work, capsys, ["predict", "train.txt", "--checkpoint", "m.pt", "--out", "p.tsv", "--device", "cuda"],
            "--device", "CUDA is not available here")


def test_the_limits_are_stated_in_help(capsys):
    for command, words in {"evolve": ["1 to 100,000", "0 to 4,294,967,295", "0 to 1"],
                           "mutagenesis": ["finite number > 0", "1 to 1,048,576"],
                           "simulate": ["1 to 100,000,000"], "predict": ["1 to 1,048,576", "cuda:N"]}.items():
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for w in words:
            assert w in text, (command, w)


@pytest.mark.parametrize("command", COMMANDS)
def test_common_options_come_from_one_place(command):
    """--device checked by one type with one default, --batch-size with one range, --quiet everywhere."""
    actions = {s: a for a in COMMANDS[command]._actions for s in a.option_strings}
    if "--device" in actions and command != "train":  # train: --device is its --accelerator (auto = CUDA if any)
        assert actions["--device"].type is device_type and actions["--device"].default is None
    if "--batch-size" in actions and command != "train":
        assert "1 to 1,048,576" in actions["--batch-size"].help
    if "--no-progress" in actions:
        assert "--quiet" in actions and actions["--no-progress"].help == argparse.SUPPRESS


def test_train_takes_quiet_and_keeps_no_progress_hidden(capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "--out", "r", "--quiet"]).progress is False
    assert parser.parse_args(["train", "--out", "r", "--no-progress"]).progress is False
    assert parser.parse_args(["train", "--out", "r"]).progress is None  # the config's default
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--quiet" in text and "--no-progress" not in text


# --- design files -------------------------------------------------------------------------------------


def _deltas(path: Path, n: int = 2, rows: dict | None = None, fill: float = 0.3) -> None:
    arrays = {"delta": np.full((n, 5, 4), fill, np.float32), "reference": np.zeros((n, 5), np.uint8),
              "start": np.zeros(n, np.int64), "length": np.full(n, 5, np.int64),
              "prediction": np.ones(n, np.float32), "ids": np.array([f"s{i}" for i in range(n)])}
    np.savez(path, **{**arrays, **(rows or {})})


EVOLVABILITY = {
    "arrays disagree in rows": ({"prediction": np.ones(3, np.float32)}, None, ["prediction has 3 rows"]),
    "ids disagree in rows": ({"ids": np.array(["a"])}, None, ["ids has 1 rows"]),
    "all deltas NaN": ({}, float("nan"), ["every delta is NaN"]),
    "infinite delta": ({}, float("inf"), ["NaN or infinite"]),
    "NaN prediction": ({"prediction": np.array([1.0, np.nan], np.float32)}, None, ["NaN or infinite"]),
}


@pytest.mark.parametrize("case", EVOLVABILITY)
def test_evolvability_refuses_inconsistent_deltas(work, capsys, case):
    rows, fill, expected = EVOLVABILITY[case]
    _deltas(work / "d.npz", rows=rows, fill=0.3 if fill is None else fill)
    refused(work, capsys, ["evolvability", "d.npz", "--out", "ev"], "d.npz", *expected)


# --- checkpoints, imports and exports -----------------------------------------------------------------


class _Runs:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_and_random_bytes_are_told_apart(work, capsys):
    import torch

    torch.save({"format": "crmnet.checkpoint", "x": _Runs()}, work / "evil.pt")
    line = refused(work, capsys, ["predict", "train.txt", "--checkpoint", "evil.pt", "--out", "p.tsv"],
                   "evil.pt", "holds Python objects (print)", "nothing was run")
    assert "weights_only" not in line
    line = refused(work, capsys, ["predict", "train.txt", "--checkpoint", "random.bin", "--out", "p.tsv"],
                   "random.bin", "not a file torch wrote")
    assert "Python objects" not in line and "weights_only" not in line


def test_a_pickled_training_state_is_refused_without_torchs_advice(tmp_path):
    import torch

    from crmnet.training.state import load_state

    torch.save({"format": _Runs()}, tmp_path / "state.pt")
    with pytest.raises(InputError) as info:
        load_state(tmp_path / "state.pt")
    assert "holds Python objects" in str(info.value) and "weights_only" not in str(info.value)


def test_errors_name_the_output_not_crmnets_lock_file(work, capsys):
    line = refused(work, capsys, ["predict", "train.txt", "--checkpoint", "m.pt", "--out", "/proc/x.tsv"],
                   "/proc/x.tsv")
    assert ".lock" not in line


@pytest.mark.slow
def test_a_failed_parity_check_leaves_nothing(work, capsys, monkeypatch):
    """The export was under its final name before the parity check; now checked on the temporary (~15 s)."""
    from crmnet.cli import export

    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # every export now "differs"
    refused(work, capsys, ["export", "--checkpoint", "m.pt", "--format", "torchscript", "--out", "m.ts",
                           "--parity", "4"], "m.ts", "differs from PyTorch", "nothing written")


@pytest.mark.parametrize("opset", ["1", "999"])
def test_export_opsets_out_of_range_are_one_line(work, capsys, opset):
    pytest.importorskip("onnxscript")
    refused(work, capsys, ["export", "--checkpoint", "m.pt", "--format", "onnx", "--onnx-exporter", "torchscript",
                           "--opset", opset, "--out", "m.onnx"], "--opset", "opsets 7 to")


def test_an_opset_without_an_operator_the_model_needs_is_one_line(work, capsys):
    pytest.importorskip("onnxscript")
    line = refused(work, capsys, ["export", "--checkpoint", "m.pt", "--format", "onnx", "--onnx-exporter",
                                  "torchscript", "--opset", "11", "--out", "m.onnx"], "cannot write this model")
    assert "opset 11" in line


def _limited_run(work: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``crmnet argv`` with a 64 KiB file-size limit: the kernel refuses larger writes (as a full disk)."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY)); "
            "from crmnet.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=work, env=env, check=False, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_export_into_a_full_disk_is_one_line_and_leaves_nothing(work):
    """torch.jit.save aborted in C++ on a full disk, leaving .tmp and .lock files (~12 s)."""
    before = snapshot(work)
    done = _limited_run(work, ["export", "--checkpoint", "m.pt", "--format", "torchscript", "--out", "m.ts"])
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["crmnet: error: m.ts: cannot write (File too large); nothing was written"]
    assert snapshot(work) == before


@pytest.fixture
def legnet_pth(shared) -> Path:
    return shared / "fixtures" / "legnet" / "model_300.pth"


def test_import_into_a_full_disk_is_one_line_and_leaves_nothing(work, legnet_pth):
    before = snapshot(work)
    done = _limited_run(work, ["import", str(legnet_pth), "--out", "leg.pt"])
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["crmnet: error: leg.pt: cannot write (File too large); nothing was written"]
    assert snapshot(work) == before


def test_an_import_with_nan_weights_leaves_no_checkpoint(work, capsys, legnet_pth):
    import torch

    state = torch.load(legnet_pth, map_location="cpu", weights_only=True)
    key = next(k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (work / "model_300.pth").write_bytes(buffer.getvalue())
    (work / "hparams.json").write_bytes((legnet_pth.parent / "hparams.json").read_bytes())
    refused(work, capsys, ["import", "model_300.pth", "--out", "leg.pt"], "model_300.pth", "NaN or infinite")


@pytest.mark.slow
def test_legnet_to_torchscript_is_one_line(work, capsys, legnet_pth):
    """The released LegNet cannot be traced (TracingCheckError before): one line pointing to ONNX (~40 s)."""
    assert main(["import", str(legnet_pth), "--out", "leg.pt"]) == 0
    capsys.readouterr()
    refused(work, capsys, ["export", "--checkpoint", "leg.pt", "--format", "torchscript", "--out", "leg.ts"],
            "cannot be exported to TorchScript by tracing", "--format onnx")


# --- serve --------------------------------------------------------------------------------------------


@pytest.fixture
def app_client(checkpoint):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from crmnet.serve.app import LOOPBACK_HOSTS, create_app
    from crmnet.serve.config import ServeConfig
    from crmnet.serve.models import load_models

    models = load_models([checkpoint], None, checkpoint.parent / "no-data")
    app = create_app(models, ServeConfig(max_request_bytes=64 * 1024), allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as client:
        yield client


SEQUENCE = "ACGT" * 20


@pytest.mark.parametrize(("headers", "status", "words"), [
    ({"Origin": "http://evil.example"}, 403, "another site"),
    ({"Referer": "http://evil.example/page"}, 403, "another site"),
    ({"Origin": "null"}, 403, "another site"),
    ({"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}, 403, "not evil.example:8000"),
    ({"Origin": "http://127.0.0.1:8000"}, 303, None),
    ({}, 303, None),  # no Origin: not a browser's cross-site form (curl, scripts)
])
def test_serve_refuses_state_changing_requests_from_other_sites(app_client, headers, status, words):
    jobs = app_client.app.state.jobs
    before = len(jobs.jobs())
    answer = app_client.post("/predict", data={"model": "m", "sequences": SEQUENCE}, headers=headers)
    assert answer.status_code == status, answer.text[:300]
    assert len(jobs.jobs()) == before + (status == 303)  # a refused request queues nothing
    if words:
        assert words in answer.text


def test_serve_counts_the_decompressed_bytes_of_an_upload(app_client):
    bomb = gzip.compress(b">s\n" + b"A" * (8 << 20) + b"\n")  # 8 MB of text in about 8 KB
    assert len(bomb) < 64 * 1024
    answer = app_client.post("/predict", data={"model": "m"}, files={"file": ("x.fa.gz", bomb)})
    assert answer.status_code == 400 and "decompresses to more than 0.0625 MB" in answer.text


def test_serve_says_a_json_body_is_not_a_form(app_client):
    answer = app_client.post("/predict", json={"model": "m", "sequences": SEQUENCE})
    assert answer.status_code == 400 and "not a form" in answer.text
