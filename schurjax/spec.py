"""What defines a run: :class:`RunSpec`, validated before any compute."""

import dataclasses
import itertools
from collections.abc import Mapping

from .constructions import check_construction
from .evaluate import EvalConfig
from .interventions import check_alpha
from .protocols import training_protocol
from .subspace import DiagnosticsConfig
from .tasks import TASKS, Task, make_task
from .train import TrainConfig

# RunSpec's defaults for a task that declares none of its own.
RUN_DEFAULTS = dict(
    widths=(64,), constructions=("dense_orthogonal",), eval_task_params={}, eval=EvalConfig(),
    diagnostics=DiagnosticsConfig(),
)


def task_run_defaults(task: str) -> dict:
    """RunSpec's defaults for ``task``: :data:`RUN_DEFAULTS` changed by the task's ``run_defaults``
    (an unknown task gets RUN_DEFAULTS; RunSpec then names the known ones)."""
    changes = TASKS[task].run_defaults if task in TASKS else {}
    unknown = sorted(set(changes) - set(RUN_DEFAULTS))
    if unknown:
        raise ValueError(f"task {task!r}: run_defaults {unknown} are not among {sorted(RUN_DEFAULTS)}")
    defaults = dict(RUN_DEFAULTS)
    for field, change in changes.items():
        base = defaults[field]
        defaults[field] = dataclasses.replace(base, **change) if dataclasses.is_dataclass(base) else change
    # a fresh mapping per spec: the task's declaration stays untouched
    return defaults | dict(eval_task_params=dict(defaults["eval_task_params"]))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Validated on construction, before any compute."""

    task: str
    seeds: tuple[int, ...] = (0, 1, 2)
    # None here and below: the task's own default (Task.run_defaults), else the one in RUN_DEFAULTS.
    widths: tuple[int, ...] | None = None
    constructions: tuple[str, ...] | None = None
    # The leading-sector threshold, or several: each α is analysed from the same training and Schur
    # decomposition, one row per model × α × subset (``alpha`` column).
    alpha: float | tuple[float, ...] = 0.9
    task_params: Mapping = dataclasses.field(default_factory=dict)
    # Overrides of task_params for the held-out set (the copy task scores 128 replay lags).
    eval_task_params: Mapping | None = None
    # The named training protocol (schurjax.protocols) that ``train`` starts from; ``train=None``
    # takes it as it is, so that a notebook trains as the command line does.
    protocol: str = "default"
    train: TrainConfig | None = None
    eval: EvalConfig | None = None
    diagnostics: DiagnosticsConfig | None = None

    def __post_init__(self):
        for field, value in task_run_defaults(self.task).items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, value)
        protocol = training_protocol(self.task, self.protocol)  # also refuses an unknown name
        if self.train is None:
            object.__setattr__(self, "train", protocol)
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed (e.g. seeds=3)")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative integers; got {list(self.seeds)}")
        if not self.widths:
            raise ValueError("widths is empty; give at least one width (e.g. widths=[64])")
        if not self.constructions:
            raise ValueError("constructions is empty; give at least one (e.g. constructions=[dense_orthogonal])")
        for construction, width in itertools.product(self.constructions, self.widths):
            check_construction(construction, width)
        if isinstance(self.alpha, list | tuple):
            object.__setattr__(self, "alpha", tuple(self.alpha))
            if not self.alpha or len(set(self.alpha)) < len(self.alpha):
                raise ValueError(f"alpha={list(self.alpha)}: give one threshold or a list of distinct ones")
        for alpha in self.alphas:
            check_alpha(alpha)
        task, _ = self.train_task(), self.eval_task()
        if self.train.until_solved and not task.has_solved_criterion:
            raise ValueError(
                f"train.until_solved=true needs a solved criterion, which task {self.task!r} does not define "
                f"(Task.solved); drop train.until_solved for task={self.task}"
            )

    @property
    def alphas(self) -> tuple[float, ...]:
        """Every leading-sector threshold of the run, in the order given."""
        return self.alpha if isinstance(self.alpha, tuple) else (self.alpha,)

    def train_task(self) -> Task:
        return make_task(self.task, **self.task_params)

    def eval_task(self) -> Task:
        return make_task(self.task, **{**self.task_params, **self.eval_task_params})

    def model_keys(self) -> list[tuple[str, int, int]]:
        """(construction, width, seed) of every model, in table order."""
        return list(itertools.product(self.constructions, self.widths, self.seeds))
