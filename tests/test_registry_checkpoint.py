"""Registry (names, overrides, no silently ignored config field) and checkpoints (round trips, errors)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from crmnet.data.encoding import onehot
from crmnet.errors import InputError, OutputExistsError
from crmnet.models import MODELS, build_model, list_models
from crmnet.models.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


REQUIRED = [
    "crmnet",
    "crmnet-small",
    "crmnet-tiny",
    "crmnet-no-transformer",
    "crmnet-no-se",
    "crmnet-additive-pe",
    "vaishnav-transformer",
    "vaishnav-cnn",
    "deepsea",
    "danq",
    "deepatt",
    "legnet",
]

# Small versions of every model class, so each config field can be flipped cheaply.
SMALL = {
    "crmnet-tiny": {},
    "vaishnav-transformer": {
        "motif_filters": 16,
        "coop_filters": 8,
        "heads": 2,
        "head_dim": 4,
        "ff_dim": 4,
        "lstm_units": 4,
        "dense_units": (8, 8),
    },
    "vaishnav-cnn": {"filters": 8, "pointwise_filters": 8, "dense_units": (8, 8)},
    "deepsea": {"filters": (8, 8, 8), "dense_units": (8, 8)},
    "danq": {"filters": 8, "lstm_units": 8, "dense_units": 8},
    "deepatt": {"filters": 8, "lstm_units": 4, "heads": 2, "dense_units": (4, 4)},
    "legnet": {"block_sizes": (16, 8, 8), "expand": 2},
    "dream-cnn": {"first_channels": 8, "core_sizes": (8, 4), "expand": 2},
    "dream-rnn": {"first_channels": 8, "lstm_units": 4, "core_channels": 8},
    "dream-attn": {"channels_attn": 8, "layers": 1, "heads": 2},
}

_PEER_COMMON = {
    "length": 100,
    "pad": "end",
    "truncate": "end",
    "channels": "TGCA",
    "unknown_fill": 0.25,
    "prefix": "ACG",
    "trim_start": 2,
    "flank": "GATTACA",
}

# A different value for every field of every config class (a field missing here fails the test).
ALTERNATIVES = {
    "crmnet-tiny": {
        "length": 120,
        "pad": "start",
        "truncate": "start",
        "channels": "ACGTN",
        "unknown_fill": 0.25,
        "prefix": "ACGT",
        "trim_start": 2,
        "flank": "GATTACA",
        "encoder_channels": (8, 16, 32, 48),
        "kernel_size": 5,
        "se": False,
        "se_ratio": 4,
        "encoder_dropout": 0.3,
        "transformer": False,
        "transformer_pairs": 1,
        "heads": 3,
        "head_dim": 8,
        "ff_dim": 16,
        "transformer_dropout": 0.3,
        "position": "additive",
        "decoder_channels": 12,
        "head_channels": (8,),
        "mlp_units": (16,),
        "mlp_dropout": (0.3,),
        "leaky_slope": 0.3,
        "bn_eps": 1e-2,
        "bn_momentum": 0.5,
        "ln_eps": 1e-2,
        "conv_init": "glorot_uniform",
    },
    "vaishnav-transformer": dict(
        _PEER_COMMON,
        motif_filters=12,
        motif_width=9,
        coop_filters=12,
        coop_width=5,
        transformer_layers=1,
        heads=3,
        head_dim=2,
        ff_dim=6,
        lstm_units=3,
        dense_units=(6,),
        dropout=0.3,
    ),
    "vaishnav-cnn": dict(
        _PEER_COMMON, filters=6, width=9, pointwise_filters=6, dense_units=(6,), dense_dropout=0.5
    ),
    "deepsea": dict(
        _PEER_COMMON, filters=(8, 8, 4), width=5, pool=3, dropout=(0.5, 0.5, 0.1), dense_units=(4,)
    ),
    "danq": dict(
        _PEER_COMMON,
        filters=6,
        width=11,
        pool=7,
        lstm_units=5,
        conv_dropout=0.5,
        lstm_dropout=0.1,
        dense_units=5,
    ),
    "deepatt": dict(
        _PEER_COMMON, filters=6, width=11, pool=2, lstm_units=6, heads=4, dropout=0.5, dense_units=(4,)
    ),
    "legnet": {
        "length": 140,
        "pad": "end",
        "truncate": "end",
        "channels": "TGCA",
        "unknown_fill": 0.1,
        "prefix": "ACG",
        "trim_start": 17,
        "flank": "GATTACA",
        "block_sizes": (16, 8),
        "kernel_size": 5,
        "expand": 3,
        "filters_per_group": 4,
        "se_reduction": 2,
        "se_bilinear_rank": 0.5,
        "bins": 12,
        "bin_sd": 1.0,
        "singleton_channel": False,
        "rc_augment": False,
        "bn_momentum": 0.3,
    },
}
_DREAM_IO = {"length": 140, "pad": "end", "truncate": "end", "channels": "TGCA", "unknown_fill": 0.1, "prefix": "ACG",
             "trim_start": 2, "flank": "GATTACA", "bins": 12, "bin_sd": 1.0, "singleton_channel": False,
             "rc_augment": False}
_BHI_FIRST = {"first_channels": 12, "first_kernels": (5,), "first_dropout": 0.5}
ALTERNATIVES["dream-cnn"] = {**_DREAM_IO, **_BHI_FIRST, "core_sizes": (4,), "kernel_size": 5, "expand": 3,
                             "filters_per_group": 4, "se_reduction": 2, "bn_momentum": 0.5}
ALTERNATIVES["dream-rnn"] = {**_DREAM_IO, **_BHI_FIRST, "lstm_units": 6, "core_channels": 12, "core_dropout": 0.5,
                             "out_dropout": 0.1}
ALTERNATIVES["dream-attn"] = {**_DREAM_IO, "channels_attn": 12, "first_kernel": 5, "bn_momentum": 0.5, "layers": 2,
                              "heads": 4, "conv_kernel": 5, "ff_mult": 2, "dropout": 0.3}


def test_registry_lists_the_required_models():
    assert set(REQUIRED) <= set(list_models())
    for name, entry in MODELS.items():
        assert entry.description and entry.config_class and entry.model_class, name
    for name, overrides in SMALL.items():
        assert build_model(name, **overrides).config.to_dict()  # every small variant builds


def test_unknown_model_and_override_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'crmnet-huge'.*known models: crmnet"):
        build_model("crmnet-huge")
    with pytest.raises(ValueError, match=r"model 'crmnet-tiny'.*unknown keys \['head_count'\]"):
        build_model("crmnet-tiny", head_count=3)


def test_overrides_apply_on_top_of_the_preset():
    model = build_model("crmnet-tiny", encoder_dropout=0.25)
    assert model.config.encoder_dropout == 0.25
    assert model.config.kernel_size == MODELS["crmnet-tiny"].preset["kernel_size"]


def _fingerprint(model: torch.nn.Module) -> dict:
    """Everything a config field can change: encoding, architecture, initial weights, eval and train-mode
    outputs, batch-norm statistics after a training forward, and the training loss."""
    enc = model.encoding
    gen = torch.Generator().manual_seed(0)
    x = onehot(torch.randint(0, 5, (4, enc.length), generator=gen), enc)  # N codes included
    y = torch.tensor([1.0, 2.5, 7.0, 11.3])
    fp = {"encoding": enc, "init": {k: v.clone() for k, v in model.state_dict().items()}}
    with torch.no_grad():
        fp["eval"] = model.eval()(x)
        torch.manual_seed(1)
        fp["train"] = model.train()(x)
        fp["stats"] = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        if hasattr(model, "compute_loss"):
            torch.manual_seed(2)
            fp["loss"] = model.compute_loss(x, y)[0]
    return fp


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("name", list(SMALL))
def test_every_config_field_changes_the_model_or_its_output(name):
    config_class = MODELS[name].config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    assert set(ALTERNATIVES[name]) == fields, (
        f"alternatives missing for {sorted(fields - set(ALTERNATIVES[name]))}"
    )

    def build(**kw):
        torch.manual_seed(0)
        return build_model(name, **{**SMALL[name], **kw})

    base = _fingerprint(build())
    assert _same(base, _fingerprint(build()))  # the fingerprint itself is deterministic
    for field, value in ALTERNATIVES[name].items():
        assert getattr(build().config, field) != value, f"{field}: alternative equals the base value"
        changed = _fingerprint(build(**{field: value}))
        assert not _same(base, changed), f"{name}: config field {field!r} changes nothing"


@pytest.mark.parametrize("name", REQUIRED)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, model, provenance={"data": "unit test"}, metrics={"r": 0.5}, extra={"epoch": 3})
    loaded = load_checkpoint(path)
    assert not loaded.training
    assert type(loaded) is type(model) and loaded.config == model.config and loaded.encoding == model.encoding
    meta = loaded.checkpoint_meta
    assert meta["model"] == name and meta["format"] == FORMAT and meta["format_version"] == 1
    assert (
        meta["provenance"] == {"data": "unit test"}
        and meta["metrics"] == {"r": 0.5}
        and meta["extra"] == {"epoch": 3}
    )
    assert "state_dict" not in meta
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    enc = model.encoding
    x = onehot(torch.randint(0, 5, (2, enc.length), generator=torch.Generator().manual_seed(0)), enc)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # plain types and tensors only: loadable without unpickling code
    payload = torch.load(path, weights_only=True)
    assert json.dumps({k: v for k, v in payload.items() if k != "state_dict"})


def test_save_refuses_existing_and_is_atomic(tmp_path):
    model = build_model("crmnet-tiny")
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    with pytest.raises(OutputExistsError):
        save_checkpoint(path, model)
    save_checkpoint(path, model, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporaries left behind


def test_load_errors_name_the_file_and_problem(tmp_path):
    not_ckpt = tmp_path / "notes.txt"
    not_ckpt.write_text("hello\n")
    with pytest.raises(InputError, match=r"notes\.txt: not a crmnet checkpoint"):
        load_checkpoint(not_ckpt)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match=r"other\.pt: not a crmnet checkpoint"):
        load_checkpoint(other)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


    good = tmp_path / "good.pt"
    save_checkpoint(good, build_model("crmnet-tiny"))
    payload = torch.load(good, weights_only=True)

    def variant(fname, **changes):
        p = tmp_path / fname
        torch.save({**payload, **changes}, p)
        return p

    with pytest.raises(InputError, match="unknown model 'resnet'"):
        load_checkpoint(variant("name.pt", model="resnet"))
    with pytest.raises(InputError, match="format version 2"):
        load_checkpoint(variant("version.pt", format_version=2))
    sd = dict(payload["state_dict"])
    sd.pop("mlp.0.bias")
    with pytest.raises(
        InputError, match=r"state_dict does not match.*missing \(e\.g\. mlp\.0\.bias\)|missing.*mlp\.0\.bias"
    ):
        load_checkpoint(variant("missing_key.pt", state_dict=sd))
    bigger = dict(payload["model_config"], mlp_units=[64], mlp_dropout=[0.1])
    with pytest.raises(InputError, match="shape mismatch"):
        load_checkpoint(variant("shape.pt", model_config=bigger))
    with pytest.raises(InputError, match="invalid model_config"):
        load_checkpoint(variant("config.pt", model_config={**payload["model_config"], "heads_": 3}))
    with pytest.raises(InputError, match="invalid model_config"):
        load_checkpoint(variant("config_list.pt", model_config=[]))
    with pytest.raises(InputError, match="invalid encoding"):
        load_checkpoint(variant("encoding.pt", encoding={**payload["encoding"], "pad": "middle"}))
    assert read_checkpoint(good)["model"] == "crmnet-tiny"


class _RunsCode:
    def __reduce__(self):
        import os

        return os.system, (f"touch {_RunsCode.target}",)


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path):
    _RunsCode.target = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": _RunsCode()}, evil)
    with pytest.raises(InputError) as info:
        load_checkpoint(evil)
    assert "holds Python objects" in str(info.value) and "weights_only=False" not in str(info.value)
    assert "\n" not in str(info.value) and not _RunsCode.target.exists()



@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
def test_cli_models_lists_every_model(capsys):
    from crmnet.cli import main
    from crmnet.cli.models import format_table

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(MODELS)
    assert rows["crmnet"]["params"] == 34_165_681 and rows["crmnet"]["buffers"] == 4_608
    assert abs(rows["crmnet"]["flops"] / 1e9 - 1.303) < 0.001  # spec: 1.303 GFLOP per sample
    table = format_table([rows["crmnet"]]).splitlines()
    assert table[0].split()[:5] == ["name", "params", "BN", "stats", "MFLOP/seq"]
    assert table[1].split()[:4] == ["crmnet", "34,165,681", "4,608", "1303.1"]
