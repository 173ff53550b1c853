"""Hydra config → plain library objects. The only place that knows the config layout."""

import dataclasses
import importlib
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

from experiments.protocol_study import Candidate
from experiments.reproduction.suites import PaperSpec
from schurjax.devices import use_compilation_cache, use_cpu_cores
from schurjax.evaluate import EvalConfig
from schurjax.pipeline import RunSpec
from schurjax.protocols import training_protocol
from schurjax.subspace import DiagnosticsConfig
from schurjax.train import TrainConfig

log = logging.getLogger("schurjax")
Built = TypeVar("Built")


def build_or_exit(
    cfg: DictConfig, build: Callable[[DictConfig], Built], failure: str = "invalid configuration"
) -> Built:
    """Expose the CPU cores and the compilation cache, then build the config's library objects; a
    configuration error is one log line naming the value and the fix, and exit status 2, before
    any compute."""
    try:
        use_cpu_cores(cfg.cpu_devices)
        use_compilation_cache(cfg.get("compilation_cache"))
        import_plugins(cfg.get("plugins") or [])
        return build(cfg)
    except (ValueError, TypeError) as error:
        log.error("%s: %s", failure, error)
        sys.exit(2)


def import_plugins(modules) -> None:
    """Import the user's modules named by ``plugins``, so that the tasks and constructions they
    register (``register_task``, ``register_construction``) exist before the config is built."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(
                f"plugins=[{', '.join(modules)}]: cannot import {name!r} ({error}); put the module on "
                "PYTHONPATH (or install it) or drop it from plugins"
            ) from None


def _seeds(value) -> tuple[int, ...]:
    """``seeds=3`` means seeds 0, 1, 2; ``seeds=[0,4]`` names them."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    raise ValueError(
        f"seeds={value!r}: give a positive number of seeds (seeds=3) or a list of seeds (seeds=[0,4])"
    )


def _alpha(value) -> float | tuple[float, ...]:
    """``alpha=0.9``, or ``alpha=[0.85,0.9,0.95]``: several thresholds analysed in one run."""
    return tuple(value) if isinstance(value, list) else value


def _as_tuple(value) -> tuple:
    # A single value given without brackets (widths=64) is a one-element list.
    return tuple(value) if isinstance(value, list) else (value,)


def eval_config(plain: dict) -> EvalConfig:
    return EvalConfig(**plain["eval"])


def diagnostics_config(plain: dict) -> DiagnosticsConfig:
    # YAML lists become the tuples the dataclass declares
    section = plain["diagnostics"]
    return DiagnosticsConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})


def run_spec(cfg: DictConfig) -> RunSpec:
    """Build and validate the RunSpec a config describes."""
    protocol, known = cfg.train.protocol, list(cfg.task.protocols)
    if protocol not in known:
        raise ValueError(f"train.protocol={protocol}: task {cfg.task.name} has the protocols {', '.join(known)}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    task = plain["task"]
    train = dict(plain["train"])
    protocol = train.pop("protocol")
    return RunSpec(
        task=task["name"],
        seeds=_seeds(plain["seeds"]),
        widths=_as_tuple(plain["widths"]),
        constructions=_as_tuple(plain["constructions"]),
        alpha=_alpha(plain["alpha"]),
        task_params=task.get("params") or {},
        eval_task_params=task.get("eval_params") or {},
        protocol=protocol,
        train=TrainConfig(**train),
        eval=eval_config(plain),
        diagnostics=diagnostics_config(plain),
    )


def _paper_settings(cfg: DictConfig) -> dict:
    """conf/paper.yaml as plain data, with ``quick_settings`` merged in when quick=true."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    if plain["quick"]:
        quick = dict(plain["quick_settings"])
        if plain.get("variants") is None:  # variants=null: skipped, and quick=true must not revive them
            quick.pop("variants", None)
        # a plain (non-struct) merge: quick settings may add keys, e.g. train.steps
        plain = OmegaConf.to_container(OmegaConf.merge(plain, quick))
    return plain


def paper_specs(cfg: DictConfig) -> dict[str, PaperSpec]:
    """The PaperSpec of conf/paper.yaml for each of its training protocols."""
    plain = _paper_settings(cfg)
    protocols = _as_tuple(plain["protocols"])
    if not protocols:
        raise ValueError("protocols is empty; give at least one (e.g. protocols=[default,paper])")
    return {protocol: paper_spec(plain, protocol) for protocol in protocols}


def paper_spec(plain: dict, protocol: str) -> PaperSpec:
    """The reproduction under one training protocol (``plain``: see :func:`_paper_settings`)."""
    seeds = _seeds(plain["seeds"])
    ci_seeds = plain["ci_seeds"]
    if isinstance(ci_seeds, bool) or not isinstance(ci_seeds, int) or ci_seeds < 0:
        raise ValueError(f"ci_seeds={ci_seeds!r}: give a number of seeds >= 0")
    common = dict(alpha=plain["alpha"], protocol=protocol, eval=eval_config(plain))
    diagnostics = diagnostics_config(plain)

    def train(task: str, changes: dict) -> TrainConfig:
        return training_protocol(task, protocol, **(plain["train"] | changes))

    copy, neuro = plain["copy"], plain["neuro"]
    copy_spec = RunSpec(
        task="copy",
        seeds=seeds,
        widths=_as_tuple(copy["widths"]),
        constructions=_as_tuple(copy["constructions"]),
        task_params=copy["params"],
        eval_task_params=copy["eval_params"],
        train=train("copy", {}),
        # 36 controllers x 3 alphas: fixed points are for the neuro suite
        diagnostics=dataclasses.replace(diagnostics, fixed_points=False),
        **common,
    )
    neuro_seeds = tuple(range(max(len(seeds), ci_seeds))) if seeds == tuple(range(len(seeds))) else seeds

    def neuro_spec(task: str, changes: dict) -> RunSpec:
        return RunSpec(
            task=task,
            seeds=neuro_seeds,
            widths=(neuro["width"],),
            constructions=(neuro["construction"],),
            train=train(task, changes),
            diagnostics=diagnostics,
            **common,
        )

    variants = {}
    for name, variant in (plain.get("variants") or {}).items():
        if set(variant) - {"task", "train"} or "task" not in variant:
            raise ValueError(f"variants.{name}={variant!r}: give a task and the train settings it changes")
        variants[name] = neuro_spec(variant["task"], variant.get("train", {}))
    return PaperSpec(
        copy=copy_spec,
        alphas=tuple(plain["alphas"]),
        neuro=tuple(neuro_spec(task, {}) for task in _as_tuple(neuro["tasks"])),
        paper_seeds=len(seeds),
        ci_seeds=ci_seeds if neuro_seeds != seeds else len(seeds),
        variants=variants,
    )


def _quick(plain: dict) -> dict:
    """``quick_settings`` in place of the full settings: top-level keys are replaced, the copy
    and eval sections updated key by key."""
    if not plain["quick"]:
        return plain
    return plain | {
        key: plain[key] | value if key in ("copy", "eval") else value for key, value in plain["quick_settings"].items()
    }


def protocol_candidates(cfg: DictConfig) -> list[Candidate]:
    """Every (task, protocol) cell of conf/protocols.yaml as a validated RunSpec."""
    plain = _quick(OmegaConf.to_container(cfg, resolve=True))
    seeds = _seeds(plain["seeds"])
    evaluation = eval_config(plain)
    no_fixed_points = DiagnosticsConfig(fixed_points=False)

    def train(task: str, name: str, settings: dict) -> TrainConfig:
        try:
            return training_protocol(task, "paper", **(settings | plain["train"]))
        except TypeError as error:
            raise ValueError(f"protocols.{name}={settings!r}: {error}") from None

    candidates = [
        Candidate(
            name,
            RunSpec(task=task, seeds=seeds, train=train(task, name, settings), eval=evaluation,
                    diagnostics=no_fixed_points),
        )
        for task in _as_tuple(plain["tasks"])
        for name, settings in plain["protocols"].items()
    ]
    copy = plain["copy"]
    if copy is None:  # copy=null: neuro tasks only
        return candidates
    return candidates + [
        Candidate(
            name,
            RunSpec(
                task="copy",
                seeds=seeds,
                widths=(copy["width"],),
                constructions=_as_tuple(copy["constructions"]),
                task_params=copy["params"],
                eval_task_params=copy["eval_params"],
                train=train("copy", name, settings),
                eval=evaluation,
                diagnostics=no_fixed_points,
            ),
        )
        for name, settings in copy["protocols"].items()
    ]
