"""Multi-stage training recipes.

Multi-stage training recipes: pre-train, then fine-tune from the earlier stage's best weights
(the paper's transfer recipe is ``configs/paper_transfer.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crmnet.config import ConfigError
from crmnet.errors import InputError
from crmnet.training.checks import check_run
from crmnet.training.config import TrainConfig, TrainResult
from crmnet.training.run import fit, result_from_disk


def run_recipe(recipe: dict, out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
               source: str | os.PathLike | None = None, **settings: Any) -> dict[str, TrainResult]:
    """Run a multi-stage recipe: each stage trains into ``out/<name>``.

    Parameters
    ----------
    recipe : dict
        ``{"stages": [{"name": str, "init_from": str (optional), "config": {TrainConfig fields}}]}``;
        ``init_from`` names an earlier stage whose ``best.ckpt`` initialises this one (pre-train →
        fine-tune); relative ``store`` paths are relative to the working directory.
    out : str or os.PathLike
        Directory of the stages' run directories.
    resume : bool
        Skip stages whose run is complete and resume the first incomplete one.
    overwrite : bool
        Replace existing run directories.
    source : str or os.PathLike, optional
        The recipe's file, named in errors.
    **settings
        TrainConfig fields that override every stage's config.

    Returns
    -------
    dict of str to TrainResult
        Each stage's result, in order.
    """
    out = Path(out)
    stages = recipe.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(source, "a recipe needs a non-empty list 'stages'")
    configs: dict[str, TrainConfig] = {}
    for i, stage in enumerate(stages):  # every stage is checked before the first one trains
        name, cfg = _stage_config(stage, i, configs, out, source, settings)
        if not (resume and (out / name / "config.json").exists()):
            try:
                check_run(cfg, out / name, resume=False, overwrite=overwrite, init=not stage.get("init_from"))
            except ConfigError as exc:
                raise InputError(source, f"stage {name!r}: {exc}") from None
        configs[name] = cfg
    results: dict[str, TrainResult] = {}
    for name, cfg in configs.items():
        run_dir = out / name
        if resume and (run_dir / "metrics.json").exists():
            results[name] = result_from_disk(run_dir)
            continue
        stage_resume = resume and (run_dir / "config.json").exists()
        results[name] = fit(None if stage_resume else cfg, run_dir, resume=stage_resume, overwrite=overwrite)
    return results


def _stage_config(stage, i: int, done: dict, out: Path, source, settings: dict) -> tuple[str, TrainConfig]:
    if not isinstance(stage, dict):
        raise InputError(source, f"stage {i + 1}: expected an object with 'name' and 'config'")
    unknown = set(stage) - {"name", "init_from", "config"}
    if unknown or "name" not in stage:
        raise InputError(source, f"stage {i + 1}: needs 'name' and 'config' (unknown keys {sorted(unknown)})")
    name = stage["name"]
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise InputError(source, f"stage {i + 1}: name must be a plain directory name, not {name!r}")
    if name in done:
        raise InputError(source, f"stage {i + 1}: name {name!r} is used twice")
    if not isinstance(stage.get("config", {}), dict):
        raise InputError(source, f"stage {name!r}: config must be an object of TrainConfig fields")
    cfg_dict = {**stage.get("config", {}), **settings}
    if stage.get("init_from"):
        if stage["init_from"] not in done:
            raise InputError(source, f"stage {name!r}: init_from {stage['init_from']!r} is not an earlier stage")
        cfg_dict.update(init=str(out / stage["init_from"] / "best.ckpt"), model="")
    try:
        return name, TrainConfig.from_dict(cfg_dict)
    except (ValueError, TypeError) as exc:
        raise InputError(source, f"stage {name!r}: {exc}") from None
