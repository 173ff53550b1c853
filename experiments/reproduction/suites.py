"""The paper's experiments as one call: copy suite, α table, neuro suite, figures, report.

:func:`reproduce` trains every model once (through the model cache when one is given), analyses
the copy controllers at every α of the sensitivity table without retraining (α only moves the
R/C partition), and writes a run directory holding one ordinary run directory per suite plus the
paper's tables, Figures 1–2 and ``REPRODUCTION.md``, which sets our numbers beside the paper's.
"""

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from experiments.reproduction.report import reproduction_report
from schurjax import plots
from schurjax.cache import ModelCache
from schurjax.evaluate import held_out_set
from schurjax.pipeline import (
    RunSpec,
    analyse,
    full_model_rollouts,
    model_training_key,
    train_all,
    write_results,
    write_run,
)
from schurjax.results import (
    SUMMARY_COLUMNS,
    is_diverged,
    summarise,
    t_half_width,
    write_csv,
)

log = logging.getLogger(__name__)

# Figure 1 shows these Nh = 72 copy controllers.
FIGURE1_CONSTRUCTIONS = ("dense_orthogonal", "cayley")
FIGURE1_WIDTH = 72
CI_LEVEL = 0.95
CI_SUMMARY_COLUMNS = (*SUMMARY_COLUMNS, "ci95_low", "ci95_high")
PUBLISHED_TABLES = ("copy_summary.csv", "alpha_table.csv", "neuro_summary.csv", "neuro_ci_summary.csv")


@dataclasses.dataclass(frozen=True)
class PaperSpec:
    """The whole reproduction: the copy suite at the main α, the α table, the neuro suite.

    ``neuro`` specs train ``max(paper_seeds, ci_seeds)`` seeds once; the tables compared with
    the paper use the first ``paper_seeds`` of them (the paper had 3), the confidence-interval
    table all of them.
    """

    copy: RunSpec
    alphas: tuple[float, ...]
    neuro: tuple[RunSpec, ...]
    paper_seeds: int
    ci_seeds: int
    # Investigations beyond the paper's protocol (e.g. another learning rate for one task),
    # by name; reported in their own section, never mixed into the comparison with the paper.
    variants: Mapping[str, RunSpec] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.copy.alpha not in self.alphas:
            raise ValueError(f"alphas={list(self.alphas)} must include the main alpha={self.copy.alpha}")
        if self.paper_seeds < 1 or self.ci_seeds < 0:
            raise ValueError(f"seeds={self.paper_seeds} must be >= 1 and ci_seeds={self.ci_seeds} >= 0")
        for spec in self.neuro:
            if len(spec.seeds) < max(self.paper_seeds, self.ci_seeds):
                needed = max(self.paper_seeds, self.ci_seeds)
                raise ValueError(f"neuro task {spec.task} trains {len(spec.seeds)} seeds; it needs {needed}")


@dataclasses.dataclass(frozen=True)
class PaperResult:
    copy_rows: list[dict]  # every α
    neuro_rows: list[dict]  # every neuro seed
    variant_rows: dict[str, list[dict]]
    seconds: dict[str, float]
    # Per suite: how many of its models came from the model cache instead of being trained.
    reused: dict[str, str]


def confidence_summary(rows: Sequence[Mapping], level: float = CI_LEVEL) -> list[dict]:
    """:func:`summarise` plus a Student-t confidence interval of each mean (NaN for n < 2)."""
    summary = summarise(rows)
    for row in summary:
        half = t_half_width(row["sem"], row["n"], level)
        row |= dict(ci95_low=row["mean"] - half, ci95_high=row["mean"] + half)
    return summary


def _reused(spec: RunSpec, cache: ModelCache) -> str:
    keys = [model_training_key(spec, *k) for k in spec.model_keys()]
    return f"{sum(cache.get(k) is not None for k in keys)}/{len(keys)}"


def _copy_suite(spec: PaperSpec, out_dir: Path, progress: bool, cache: ModelCache) -> list[dict]:
    trained = train_all(spec.copy, progress=progress, cache=cache)
    data = held_out_set(spec.copy.eval_task(), spec.copy.eval)
    # One Schur decomposition per controller for every α of the table (one row per model × α × subset).
    rollouts = full_model_rollouts(trained, data, spec.copy.eval, spec.copy.diagnostics)
    rows = analyse(
        trained, data, task="copy", alpha=spec.alphas, config=spec.copy.eval, diagnostics=spec.copy.diagnostics,
        rollouts=rollouts,
    )
    for alpha in spec.alphas:
        at_alpha = [r for r in rows if r["alpha"] == alpha]
        if alpha == spec.copy.alpha:
            write_run(spec.copy, trained, at_alpha, out_dir / "copy", inputs=data[0], rollouts=rollouts)
        else:
            write_results(at_alpha, out_dir / f"copy_alpha{alpha:g}")
    return rows


def _task_run(spec: RunSpec, out_dir: Path, progress: bool, cache: ModelCache) -> list[dict]:
    trained = train_all(spec, progress=progress, cache=cache)
    data = held_out_set(spec.eval_task(), spec.eval)
    # each full model rolled out once, for the evaluation, the subspace diagnostics and the fixed points
    rollouts = full_model_rollouts(trained, data, spec.eval, spec.diagnostics)
    rows = analyse(
        trained, data, task=spec.task, alpha=spec.alpha, config=spec.eval, diagnostics=spec.diagnostics,
        rollouts=rollouts,
    )
    write_run(spec, trained, rows, out_dir, inputs=data[0], rollouts=rollouts)
    return rows


def write_paper_outputs(spec: PaperSpec, result: PaperResult, out_dir: Path) -> None:
    """Tables, figures and REPRODUCTION.md of a finished reproduction."""
    tables, figures = out_dir / "tables", out_dir / "figures"
    main = [r for r in result.copy_rows if r["alpha"] == spec.copy.alpha]
    paper_neuro = [r for r in result.neuro_rows if r["seed"] in spec.neuro[0].seeds[: spec.paper_seeds]]
    ci_neuro = [r for r in result.neuro_rows if r["seed"] in spec.neuro[0].seeds[: spec.ci_seeds]]
    write_csv(tables / "copy_summary.csv", summarise(main), SUMMARY_COLUMNS)
    write_csv(tables / "alpha_table.csv", summarise(result.copy_rows), SUMMARY_COLUMNS)
    write_csv(tables / "neuro_summary.csv", summarise(paper_neuro), SUMMARY_COLUMNS)
    if ci_neuro:
        write_csv(tables / "neuro_ci_summary.csv", confidence_summary(ci_neuro), CI_SUMMARY_COLUMNS)
    panels = [r for r in main if r["construction"] in FIGURE1_CONSTRUCTIONS and r["width"] == FIGURE1_WIDTH]
    if panels:
        first_seed = min(r["seed"] for r in panels)
        plots.lattice_figure([r for r in panels if r["seed"] == first_seed], figures / "figure1")
        plots.lattice_figure(panels, figures / "figure1_mean_sem")
    plots.block_figure(paper_neuro, figures / "figure2")
    if ci_neuro:
        plots.block_figure(ci_neuro, figures / "figure2_ci", interval="ci95")
    (out_dir / "REPRODUCTION.md").write_text(
        reproduction_report(
            copy_rows=result.copy_rows,
            paper_neuro=paper_neuro,
            ci_neuro=ci_neuro,
            main_alpha=spec.copy.alpha,
            copy_budget=spec.copy.train.steps,
            seconds=result.seconds,
            reused=result.reused,
            variants={
                name: (rows, spec.paper_seeds, spec.ci_seeds) for name, rows in result.variant_rows.items()
            },
            diverged=sum(is_diverged(r) for r in [*result.copy_rows, *result.neuro_rows] if r["subset"] == "none"),
            protocol=spec.copy.protocol,
            protocols={s.task: s.train.describe() for s in (spec.copy, *spec.neuro)},
        )
    )


def reproduce(
    spec: PaperSpec, out_dir: str | Path, *, progress: bool = True, cache_dir: str | Path | None = None
) -> PaperResult:
    """Run every suite and write the reproduction into ``out_dir``."""
    out_dir = Path(out_dir)
    cache = ModelCache(cache_dir)
    suites = {"copy (all alphas)": (spec.copy, out_dir / "copy")}
    suites |= {f"neuro/{s.task}": (s, out_dir / "neuro" / s.task) for s in spec.neuro}
    suites |= {f"variant/{name}": (s, out_dir / "variants" / name) for name, s in spec.variants.items()}
    reused = {name: _reused(suite_spec, cache) for name, (suite_spec, _) in suites.items()}
    seconds, rows = {}, {}
    started = time.perf_counter()
    for name, (suite_spec, suite_dir) in suites.items():
        suite_started = time.perf_counter()
        if suite_spec is spec.copy:
            rows[name] = _copy_suite(spec, out_dir, progress, cache)
        else:
            rows[name] = _task_run(suite_spec, suite_dir, progress, cache)
        seconds[name] = time.perf_counter() - suite_started
        log.info("%s: %.1f s (%s models reused from the cache)", name, seconds[name], reused[name])
    seconds["total"] = time.perf_counter() - started
    result = PaperResult(
        copy_rows=rows["copy (all alphas)"],
        neuro_rows=[r for s in spec.neuro for r in rows[f"neuro/{s.task}"]],
        variant_rows={name: rows[f"variant/{name}"] for name in spec.variants},
        seconds=seconds,
        reused=reused,
    )
    write_paper_outputs(spec, result, out_dir)
    return result
