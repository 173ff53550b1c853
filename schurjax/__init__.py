"""schurjax: structured ablations of trained tanh RNNs in ordered real Schur coordinates.

A run in a notebook::

    import schurjax as sj
    sj.use_cpu_cores()  # first, before JAX computes anything
    rows = sj.run(sj.RunSpec(task="flipflop", seeds=(0, 1)), "outputs/nb")

Module map. Traced JAX code (jit/vmap over stacked models, float32):

- ``tasks``: the four tasks, trial generators ``(key, batch) -> (inputs, targets, mask)``
- ``constructions``, ``model``: the recurrent-matrix constructions and the tanh RNN (Equinox)
- ``train``: Adam on the masked MSE, many models per compiled program; ``TrainConfig``
- ``metrics``, ``evaluate``: FVU, sign agreement, rollout distance; the batched evaluator
- ``subspace``, ``fixed_points``: why an ablation is harmless (traced rollouts and finder, host
  projections and bookkeeping)
- ``devices``: every CPU core as a JAX device, models split across devices

Host code (numpy/scipy, float64; no tracing):

- ``weights``: plain weight matrices, the boundary between training and analysis
- ``schur``, ``interventions``: ordered real Schur coordinates, the leading sector, the 8 ablations
- ``controls``: matched-norm random perturbations
- ``results``, ``plots``: result rows, summaries, CSV and npz files, figures
- ``cache``, ``atomic``: the model cache and checkpoints; atomic, checksummed writes
- ``imports``: networks trained elsewhere (npz, PyTorch state dicts)
- ``protocols``, ``provenance``: named training protocols; where a published number came from

``pipeline`` joins the stages as plain function calls: ``spec`` (what a run is), ``training``
(train or reuse), ``scoring`` (Schur, ablations, evaluation), ``learning`` (which models learned),
with ``columns`` (result columns declared by the stage computing them) and ``timing``. The
command line (Hydra) and the paper's reproduction live in ``experiments/``, outside the
library: importing schurjax imports neither.
"""

from .devices import use_cpu_cores
from .evaluate import EvalConfig
from .imports import load_networks
from .interventions import ablate_all
from .model import init_model
from .pipeline import RunSpec, TrainedModel, analyse, run, train_all
from .protocols import training_protocol
from .schur import ordered_schur
from .subspace import DiagnosticsConfig
from .tasks import Task, make_task, register_task
from .train import TrainConfig, train_models
from .weights import RNNWeights

__all__ = [
    "DiagnosticsConfig",
    "EvalConfig",
    "RNNWeights",
    "RunSpec",
    "Task",
    "TrainConfig",
    "TrainedModel",
    "ablate_all",
    "analyse",
    "init_model",
    "load_networks",
    "make_task",
    "ordered_schur",
    "register_task",
    "run",
    "train_all",
    "train_models",
    "training_protocol",
    "use_cpu_cores",
]
