"""Did a model learn its task? One definition, read from its full-model result row."""

import logging
from collections.abc import Mapping, Sequence

from .results import is_diverged

log = logging.getLogger(__name__)

# A full model above this held-out FVU is reported as not having learned its task.
UNTRAINED_FVU = 0.1


def learning_failure(full_row: Mapping) -> str | None:
    """Why the model of a typed full-model result row did not learn its task: it diverged, its
    solved criterion did not hold within the budget, or its held-out FVU exceeds 0.1; None if it learned."""
    if is_diverged(full_row):
        return "diverged (non-finite loss or weights; frozen at its last finite weights)"
    if full_row.get("solved") is False:
        return f"was not solved within the {full_row['train_steps']}-step budget"
    fvu = full_row["fvu"]
    if fvu is not None and fvu > UNTRAINED_FVU:
        return f"has held-out FVU {fvu:.3g} > {UNTRAINED_FVU}"
    return None


def unlearned(rows: Sequence[Mapping]) -> list[str]:
    """Every model of ``rows`` that did not learn its task, named, with the reason."""
    return [
        f"{r['construction']} width {r['width']} seed {r['seed']} {reason}"
        for r in rows
        if r["subset"] == "none" and (reason := learning_failure(r)) is not None
    ]


def report_unlearned(rows: Sequence[Mapping]) -> None:
    """Say loudly which models did not learn: they stay in every table, and their ablation
    results say little."""
    reasons = unlearned(rows)
    n_models = sum(r["subset"] == "none" for r in rows)
    if not reasons:
        log.info("all %d models learned their task", n_models)
        return
    log.warning(
        "%d of %d models did not learn their task; they are kept and reported, not dropped or replaced "
        "(diverged ones are excluded from means). Their ablation results say little; see docs/PROTOCOLS.md "
        "for protocols that train every seed:\n  %s",
        len(reasons),
        n_models,
        "\n  ".join(reasons),
    )
