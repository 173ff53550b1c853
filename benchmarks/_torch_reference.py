"""The sequential PyTorch reference trainer, as a user would write it.

One ``nn.RNN(tanh, bias=False)`` + ``nn.Linear(bias=False)`` per model, Adam, the masked MSE,
trained one model after another. It runs in its own process (``run_isolated``) and imports no
JAX, so that its peak RSS is PyTorch's alone: the batches come from a ``.npz`` pool that the
parent generated with the schurjax task, already on the host, and are cycled. Generating them is
not timed, which favours PyTorch (the JAX trainer draws fresh batches inside its timed program).
"""

import time

import numpy as np
import torch

from ._common import parser, serve_one


class Reference(torch.nn.Module):
    """h_t = tanh(W_xh x_t + W_hh h_{t-1}), ŷ_t = W_hy h_t: the schurjax model in PyTorch."""

    def __init__(self, n_in: int, width: int, n_out: int):
        super().__init__()
        self.rnn = torch.nn.RNN(
            n_in, width, nonlinearity="tanh", bias=False, batch_first=True
        )
        self.readout = torch.nn.Linear(width, n_out, bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(inputs)
        return self.readout(states)


def _load_pool(path: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    with np.load(path) as pool:
        inputs, targets, mask = (
            torch.from_numpy(pool[name]) for name in ("inputs", "targets", "mask")
        )
    return list(zip(inputs, targets, mask.to(torch.float32)))


def _train_steps(model: Reference, optimizer, pool, first: int, count: int) -> None:
    for step in range(first, first + count):
        inputs, targets, mask = pool[step % len(pool)]
        loss = ((model(inputs) - targets) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _steps_per_second(
    model, optimizer, pool, warmup_steps: int, min_seconds: float
) -> tuple[float, int]:
    """Train until ``min_seconds`` have passed (after a warm-up); steps/s and the steps timed."""
    _train_steps(model, optimizer, pool, 0, warmup_steps)
    steps, started = 0, time.perf_counter()
    # Timing in blocks of steps keeps perf_counter out of the loop without overshooting much.
    while (elapsed := time.perf_counter() - started) < min_seconds:
        _train_steps(model, optimizer, pool, warmup_steps + steps, 10)
        steps += 10
    return steps / elapsed, steps


def measure_torch(
    pool: str,
    widths: list[int],
    n_in: int,
    n_out: int,
    lr: float,
    min_seconds: float,
    warmup_steps: int,
    threads: int | None,
) -> dict:
    """models·steps/s of training one model per width in turn, each for ``min_seconds``/len(widths).

    ``threads`` None keeps torch's default intra-op thread count (all cores).
    Sequential training makes the rate independent of the seed count: S seeds × these widths
    take S × Σ_w 1/rate_w seconds per step, so the rate per model is len(widths) / Σ_w 1/rate_w.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    data = _load_pool(pool)
    rates, steps = [], []
    for index, width in enumerate(widths):
        torch.manual_seed(index)
        model = Reference(n_in, width, n_out)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        rate, count = _steps_per_second(
            model, optimizer, data, warmup_steps, min_seconds / len(widths)
        )
        rates.append(rate)
        steps.append(count)
    return {
        "torch_models_steps_per_s": len(widths) / sum(1 / rate for rate in rates),
        "torch_rate_per_width": rates,
        "torch_steps_timed": steps,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }


if __name__ == "__main__":
    serve_one(
        parser("internal: the PyTorch reference, run by train_throughput")
        .parse_args()
        .one,
        measure_torch,
    )
