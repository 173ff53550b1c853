"""Tables, figures and PROTOCOLS.md of a finished protocol study — host only."""

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.protocol_study import (
    BLOCK_LABELS,
    BLOCKS,
    FOUND_LOSS,
    Cell,
    full_rows,
    history_rows,
    learned,
    lost_after_found,
    summarise_cell,
    unlearned_models,
    write_cell,
)
from schurjax.pipeline import UNTRAINED_FVU
from schurjax.plots import save
from schurjax.protocols import PROTOCOLS, RATIONALE
from schurjax.provenance import provenance
from schurjax.results import write_csv

STUDY_COLUMNS = (
    "task", "protocol", "settings", "models", "learned", "learned_by_construction", "diverged",
    "fvu_median", "fvu_q25", "fvu_q75",
    "peak_grad_norm_median", "seconds", "reused", "is_default",
    *(f"{b}_{s}" for b in BLOCKS for s in ("median", "q25", "q75", "dominant")), "CC_over_CR",
)
HISTORY_COLUMNS = ("task", "protocol", "construction", "seed", "step", "loss", "grad_norm")


def _by_task(cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    tasks: dict[str, list[Cell]] = {}
    for cell in cells:
        tasks.setdefault(cell.candidate.task, []).append(cell)
    return tasks


def fvu_figure(cells: Sequence[Cell], stem: Path) -> list[Path]:
    """Held-out FVU of every model per protocol, learned models filled, one panel per task."""
    tasks = _by_task(cells)
    figure = Figure(figsize=(4.2 * len(tasks), 3.6), layout="constrained")
    for ax, (task, task_cells) in zip(figure.subplots(1, len(tasks), squeeze=False)[0], tasks.items()):
        for x, cell in enumerate(task_cells):
            for offset, row in zip(np.linspace(-0.25, 0.25, len(cell.trained)), full_rows(cell)):
                ok = learned(row)
                fvu = max(row["fvu"], 1e-5)
                ax.scatter(x + offset, fvu, s=12, facecolors="C0" if ok else "none", edgecolors="C0" if ok else "C3")
            ax.annotate(
                f"{summarise_cell(cell)['learned']}/{len(cell.trained)}", (x, 1.0), ha="center", va="bottom", fontsize=7
            )
        ax.axhline(UNTRAINED_FVU, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(task_cells)), [c.candidate.protocol for c in task_cells], rotation=60, fontsize=7)
        ax.set_title(task + (" (learned = solved)" if task == "copy" else ""))
        ax.set_ylabel("held-out FVU")
    return save(figure, stem)


def gradient_figure(cells: Sequence[Cell], protocol: str, stem: Path) -> list[Path]:
    """Training loss and largest gradient norm per chunk under one protocol, one column per task;
    models that did not learn in red."""
    chosen = [c for c in cells if c.candidate.protocol == protocol]
    figure = Figure(figsize=(4.0 * len(chosen), 5.2), layout="constrained")
    axes = figure.subplots(2, len(chosen), squeeze=False, sharex="col")
    for column, cell in enumerate(chosen):
        steps = np.minimum(
            np.arange(1, 1 + len(cell.trained[0].loss_history)) * cell.candidate.spec.train.chunk_length,
            cell.candidate.spec.train.steps,
        )
        for model, row in zip(cell.trained, full_rows(cell)):
            style = dict(color="0.6" if learned(row) else "C3", linewidth=0.8, alpha=0.8)
            axes[0, column].plot(steps[: len(model.loss_history)], model.loss_history, **style)
            axes[1, column].plot(steps[: len(model.grad_norm_history)], model.grad_norm_history, **style)
        axes[0, column].set_title(f"{cell.candidate.task}, {protocol} protocol")
        for row, label in enumerate(("training loss", "largest ‖∇L‖ in chunk")):
            axes[row, column].set_yscale("log")
            axes[row, column].set_ylabel(label)
        axes[1, column].set_xlabel("step")
    return save(figure, stem)


def _fmt(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _learning_table(summaries: Sequence[Mapping]) -> list[str]:
    lines = [
        "| task | protocol | settings | learned | diverged | FVU median [IQR] | peak ‖∇L‖ (median) "
        "| train + analysis s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        mark = " **(default)**" if s["is_default"] else ""
        learned = f"{s['learned']}/{s['models']}" + (
            f" ({s['learned_by_construction']})" if "," in s["learned_by_construction"] else ""
        )
        wall = f"{s['seconds']:.0f}"
        lines.append(
            f"| {s['task']} | {s['protocol']}{mark} | {s['settings']} | {learned} | {s['diverged']} | "
            f"{_fmt(s['fvu_median'])} [{_fmt(s['fvu_q25'])}, {_fmt(s['fvu_q75'])}] | "
            f"{_fmt(s['peak_grad_norm_median'])} | {wall} |"
        )
    return lines


def _profile_table(summaries: Sequence[Mapping]) -> list[str]:
    blocks = " | ".join(f"ΔFVU {BLOCK_LABELS[b]} median [IQR]" for b in BLOCKS)
    shares = " | ".join(f"{BLOCK_LABELS[b]} dominates" for b in BLOCKS)
    lines = [f"| task | protocol | learned | {blocks} | {shares} | T_CC > T_C→R |", "|---|---|---|" + "---|" * 7]
    for s in summaries:
        cells = [f"{_fmt(s[f'{b}_median'])} [{_fmt(s[f'{b}_q25'])}, {_fmt(s[f'{b}_q75'])}]" for b in BLOCKS]
        cells += [_fmt(s[f"{b}_dominant"]) for b in BLOCKS] + [_fmt(s["CC_over_CR"])]
        lines.append(f"| {s['task']} | {s['protocol']} | {s['learned']} | " + " | ".join(cells) + " |")
    return lines


def _diagnosis(cells: Sequence[Cell]) -> list[str]:
    lines = []
    for cell in cells:
        if cell.candidate.protocol != "paper":
            continue
        found, unlearned = lost_after_found(cell)
        peaks = {True: [], False: []}
        for m, row in zip(cell.trained, full_rows(cell)):
            if m.grad_norm_history:
                peaks[learned(row)].append(np.nanmax(m.grad_norm_history))
        lines.append(
            f"- **{cell.candidate.task}**: {unlearned} of {len(cell.trained)} models did not learn; {found} of those "
            f"had reached a training loss ≤ {FOUND_LOSS:g} before losing it. Largest gradient norm during training, "
            f"median: {_fmt(np.median(peaks[False]) if peaks[False] else np.nan)} (not learned) vs "
            f"{_fmt(np.median(peaks[True]) if peaks[True] else np.nan)} (learned)."
        )
    return lines


def _defaults(summaries: Sequence[Mapping]) -> list[str]:
    lines = ["| task | default protocol | learned | FVU median | rationale |", "|---|---|---|---|---|"]
    for task, config in PROTOCOLS["default"].items():
        match = [s for s in summaries if s["task"] == task and s["is_default"]]
        if match:
            by_construction = (
                f" ({match[0]['learned_by_construction']})" if "," in match[0]["learned_by_construction"] else ""
            )
            numbers = f"{match[0]['learned']}/{match[0]['models']}{by_construction} | {_fmt(match[0]['fvu_median'])}"
        else:
            numbers = "not in this study | –"
        lines.append(f"| {task} | {config.describe()} | {numbers} | {RATIONALE.get(task, '')} |")
    return lines


def report(cells: Sequence[Cell], summaries: Sequence[Mapping], command: str) -> str:
    unlearned = [
        f"- {c.candidate.task} / {c.candidate.protocol}: " + ", ".join(unlearned_models(c))
        for c in cells
        if unlearned_models(c)
    ]
    sections = [
        "# Training protocols: which one trains every seed, and what it does to the ablation profile",
        "",
        f"Generated by `{command}` at {provenance()}. Every number below is computed by that run; "
        "nothing is typed by hand. A model has *learned* when its held-out FVU is at most "
        f"{UNTRAINED_FVU:g} (copy: when it replays all 128 lags perfectly on the 256-trial check set within "
        "the budget) and it did not diverge. No seed is dropped, re-drawn or replaced: the models that did "
        "not learn are listed at the end.",
        "",
        "![held-out FVU per protocol](protocols/protocols.png)",
        "",
        "## What goes wrong under the paper's protocol",
        "",
        *_diagnosis(cells),
        "",
        "![loss and gradient norm under the paper's protocol](protocols/gradient_norms.png)",
        "",
        "## Learned fraction and held-out FVU",
        "",
        *_learning_table(summaries),
        "",
        "## Single-block ablation profile (learned models only)",
        "",
        "ΔFVU of removing one coupling block; *dominates*: the share of learned models in which that block's "
        "ΔFVU is the largest of the three; *T_CC > T_C→R*: the share in which removing T_CC costs more than "
        "removing T_C→R (the paper's neuro profile).",
        "",
        *_profile_table(summaries),
        "",
        "## The defaults",
        "",
        *_defaults(summaries),
        "",
        "The paper's exact protocol stays one override away: "
        "`python -m experiments.run task=<task> train.protocol=paper`.",
        "",
        "## Models that did not learn",
        "",
        *(unlearned or ["None."]),
        "",
    ]
    return "\n".join(sections)


def write_study(cells: Sequence[Cell], out_dir: Path, command: str) -> None:
    summaries = [
        summarise_cell(c) | {"is_default": c.candidate.spec.train == PROTOCOLS["default"].get(c.candidate.task)}
        for c in cells
    ]
    for cell in cells:
        write_cell(cell, out_dir)
    write_csv(out_dir / "protocols.csv", summaries, STUDY_COLUMNS)
    write_csv(out_dir / "training_curves.csv", [r for c in cells for r in history_rows(c)], HISTORY_COLUMNS)
    fvu_figure(cells, out_dir / "protocols" / "protocols")
    gradient_figure(cells, "paper", out_dir / "protocols" / "gradient_norms")
    (out_dir / "PROTOCOLS.md").write_text(report(cells, summaries, command))


def publish(out_dir: Path, docs_dir: Path) -> None:
    """Copy PROTOCOLS.md, its figures and tables into ``docs_dir`` (e.g. docs/)."""
    target = docs_dir / "protocols"
    target.mkdir(parents=True, exist_ok=True)
    for path in [*sorted((out_dir / "protocols").glob("*")), out_dir / "protocols.csv"]:
        shutil.copyfile(path, target / path.name)
    shutil.copyfile(out_dir / "PROTOCOLS.md", docs_dir / "PROTOCOLS.md")
