"""One vocabulary: the input formats are named once and every reader, command and page uses that list."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from crmnet.cli import build_parser, main
from crmnet.data.formats import FORMATS, INPUT_FORMATS, STORE_FORMATS
from crmnet.data.store import open_store, prepare

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def _choices(command: str, option: str) -> tuple:
    """The ``choices`` of ``crmnet COMMAND OPTION`` as the parser has them."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return tuple(next(a for a in sub._actions if option in a.option_strings).choices)


def test_the_registry_is_what_commands_offer():
    assert FORMATS == ("auto", *INPUT_FORMATS)
    assert _choices("prepare", "--format") == STORE_FORMATS
    assert _choices("predict", "--format") == FORMATS
    assert "fasta" not in STORE_FORMATS and {"txt", "tsv", "csv"} <= set(STORE_FORMATS)


def test_the_page_offers_the_registry():
    pytest.importorskip("starlette")  # the serve extra
    from crmnet.serve.app import _templates
    from crmnet.serve.config import ServeConfig

    html = _templates().get_template("_sequences.html").render(limits=ServeConfig(), form={}, max_sequences=5)
    offered = [line.split('value="')[1].split('"')[0] for line in html.splitlines() if "<option" in line]
    assert tuple(offered) == FORMATS


def test_prepare_takes_every_format_with_measurements(tmp_path, rng):
    seqs = [LEFT + "".join(rng.choice(list("ACGT"), size=80)) + RIGHT for _ in range(40)]
    values = rng.normal(10, 3, size=40).round(4)
    (tmp_path / "t.tsv").write_text("id\tsequence\tMeasured Expression\n"
                                    + "".join(f"s{i}\t{s}\t{v}\n" for i, (s, v) in enumerate(zip(seqs, values))))
    store = prepare([tmp_path / "t.tsv"], tmp_path / "store")
    assert open_store(tmp_path / "store").manifest["sources"][0]["format"] == "tsv"
    np.testing.assert_allclose(np.sort(store.targets), np.sort(values.astype(np.float32)))
    (tmp_path / "t.fa").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    assert main(["prepare", str(tmp_path / "t.fa"), "--out", str(tmp_path / "fa-store")]) == 2
    assert not (tmp_path / "fa-store").exists()


def test_one_trajectory_table_for_the_command_and_the_page(tmp_path):
    """``crmnet evolve``'s trajectory.tsv and the Evolve page's are the same rows, written by the same builder."""
    pytest.importorskip("starlette")  # the serve extra
    from crmnet.design.evolve import EvolveConfig, evolve_to_file
    from crmnet.design.oracle import ModelPredictor, Objective
    from crmnet.serve.analyses import evolve_job
    from crmnet.serve.inputs import Sequences
    from crmnet.serve.models import ServedModel
    from design_toys import LinearToy, constructs

    model, seqs = LinearToy(seed=3).eval(), constructs(2, seed=4)
    config = EvolveConfig(mode="ga", generations=4, population=6, target=1.0, tolerance=0.01, seed=7)
    evolve_to_file(Objective({"A": ModelPredictor(model, batch_size=4096)}, "A"), ["s1", "s2"], seqs,
                   tmp_path / "ev", config, progress=False)
    served = ServedModel(name="toy", architecture="linear", parameters=0, input="", origin="checkpoint", model=model)
    page = evolve_job({"A": served}, "A", Sequences(["s1", "s2"], seqs, [1, 2], "form"), config, 1024)(
        lambda *_: None)
    assert page.files["trajectory.tsv"][0].decode() == (tmp_path / "ev" / "trajectory.tsv").read_text()


def test_tsv_rows_format_as_the_table_writer(tmp_path):
    from crmnet.tables import tsv_row, write_tsv

    rows = [{"id": "a\tb", "value": np.float32(1 / 3), "p_value": 0.0, "n": 3}, {"id": "c", "value": float("nan")}]
    write_tsv(tmp_path / "t.tsv", rows)
    columns = ["id", "value", "p_value", "n"]
    expected = tsv_row(columns) + "".join(tsv_row([r.get(c) for c in columns], columns) for r in rows)
    assert (tmp_path / "t.tsv").read_text() == expected
    assert expected.splitlines()[1:] == ["a b\t0.333333\t< 1e-300\t3", "c\t\t\t"]


def test_the_default_loss_is_the_models_own_declaration():
    """``--loss auto`` reads the model config's ``default_loss``; no list of config classes decides it."""
    import dataclasses

    import torch

    from crmnet.models import MODELS, ModelConfig, build_model
    from crmnet.training.losses import resolve_loss

    @dataclasses.dataclass
    class MseConfig(ModelConfig):
        default_loss = "mse"

    class Toy(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config

    assert resolve_loss(Toy(MseConfig())) == "mse" and resolve_loss(Toy(ModelConfig())) == "huber"
    assert "default_loss" not in {f.name for f in dataclasses.fields(MseConfig)}  # not a checkpointed field
    with torch.device("meta"):
        kinds = {name: resolve_loss(build_model(name)) for name in MODELS}
    assert kinds["crmnet"] == "huber" and kinds["deepatt-keras"] == "mse" and kinds["legnet"] == "own"


def test_hard_dependencies_and_crmnet_are_never_skipped():
    """A broken import of crmnet or of a required dependency must fail a test, not skip it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    block = re.search(r"^dependencies = \[(.*?)^\]", (root / "pyproject.toml").read_text(), re.MULTILINE | re.DOTALL)
    deps = re.findall(r'^\s*"([^"]+)"', block.group(1), re.MULTILINE)  # tomllib is Python 3.11+
    required = {re.match(r"[A-Za-z0-9_-]+", d).group(0).lower().replace("-", "_") for d in deps} | {"crmnet"}
    skipped = [(path.name, name) for path in sorted((root / "tests").glob("*.py"))
               for name in re.findall(r"importorskip\(\s*[\"']([\w.]+)", path.read_text(encoding="utf-8"))
               if name.split(".")[0].lower() in required]
    assert required >= {"torch", "numpy", "scipy", "pyarrow", "matplotlib", "crmnet"}
    assert not skipped, f"importorskip on crmnet or a required dependency: {skipped}"


@pytest.mark.parametrize("kind", ["carded", "ensemble"])
def test_one_prediction_table_for_the_command_and_the_page(tmp_path, kind):
    """``crmnet predict``'s TSV and the Predictions page's download are the same text, from the same builder."""
    pytest.importorskip("starlette")  # the serve extra
    from crmnet.evaluation.predict import predict_file
    from crmnet.models.card import VAISHNAV_RANGE, ModelCard, quantiles
    from crmnet.models.ensemble import Ensemble
    from crmnet.serve.analyses import predict_job
    from crmnet.serve.inputs import Sequences
    from crmnet.serve.models import ServedModel
    from design_toys import LinearToy, constructs

    if kind == "carded":  # percentile and range_flag columns; the toy's values straddle the assay's 0
        model = LinearToy(seed=3).eval()
        model.checkpoint_meta = {"card": ModelCard(assay_range=VAISHNAV_RANGE, reference_set="a set",
                                                   reference=quantiles(np.linspace(-10, 10, 101))).to_dict()}
        columns = ["prediction", "percentile", "range_flag"]
    else:  # a spread column
        model = Ensemble([LinearToy(seed=3), LinearToy(seed=4)]).eval()
        columns = ["prediction", "spread"]
    seqs = constructs(6, seed=5)
    seqs[2] = seqs[2][17:97]  # a bare variable region: completed by both, and written as given by both
    ids = [f"s{i}" for i in range(len(seqs))]
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs)))
    predict_file(model, fasta, tmp_path / "out.tsv", progress=False)
    served = ServedModel(name="toy", architecture="linear", parameters=0, input="", origin="checkpoint", model=model)
    page = predict_job([served], Sequences(ids, seqs, [2 * i + 1 for i in range(len(seqs))], "form"), 1024,
                       flanks=True)(lambda *_: None)
    assert any("1 sequence of exactly 80 nt" in note and "unticking" in note for note in page.context["notes"])
    written = (tmp_path / "out.tsv").read_text()
    assert page.files["predictions.tsv"][0].decode() == written
    lines = [line.split("\t") for line in written.splitlines()]
    assert lines[0] == ["id", "sequence", *columns] and len(lines) == 7
    if kind == "carded":
        assert {row[-1] for row in lines[1:]} > {""}  # some flagged, some not


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


@pytest.mark.parametrize(("command", "config", "skip"), [
    ("train", "crmnet.training.config.TrainConfig", {"overrides", "progress"}),  # --set KEY=VALUE, --quiet
    ("design", "crmnet.design.library.DesignConfig", {"constraints"}),  # the constraint options
    ("evolve", "crmnet.design.evolve.EvolveConfig", {"constraints"}),
    ("prepare", "crmnet.data.store.PrepareConfig", {"encoding", "progress", "chunk_bytes"}),  # --length ..., --quiet
])
def test_commands_declare_their_config_the_way_train_does(command, config, skip):
    """One option per config field (crmnet.cli.options.add_config_options), its default the field's."""
    import importlib
    from dataclasses import MISSING, fields

    module, _, name = config.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    sub = _subparser(command)
    declared = [field for field, _ in sub.get_default("crmnet_config")]
    assert set(declared) == {f.name for f in fields(cls)} - skip
    actions = {a.dest: a for a in sub._actions}
    for f in fields(cls):
        if f.name not in declared or f.default is MISSING:
            continue
        # train's options default to None (a --config file's values stand); elsewhere the field's default, or
        # None where the command decides (design --per-level, evolve --population, prepare --medium)
        assert actions[f.name].default in ((None,) if command == "train" else (f.default, None)), f.name
    if command != "train":
        assert sum(actions[n].default is None and getattr(cls(), n) is not None for n in declared) <= 2


def test_config_values_rebuild_the_config():
    from crmnet.cli.options import Flag, add_config_options, config_values
    from crmnet.design.evolve import EvolveConfig

    args = build_parser().parse_args(["evolve", "in.fa", "--checkpoint", "m.pt", "--out", "o", "--window", "18-97",
                                      "--mode", "ga", "--target", "3"])
    values = config_values(args)
    assert values["window"] == (17, 97) and values["mode"] == "ga" and "population" not in values  # None: not given
    assert EvolveConfig(**values, population=100) == EvolveConfig(mode="ga", target=3.0, window=(17, 97),
                                                                  population=100)
    with pytest.raises(KeyError, match="generations"):  # a field without its Flag (and help) is an error
        add_config_options(argparse.ArgumentParser(), EvolveConfig, {"mode": Flag("m")})
