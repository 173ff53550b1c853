"""Train a PyTorch tanh RNN on schurjax's flip-flop task and save its state dict.

    pip install -e ".[torch]"
    python examples/torch_flipflop.py outputs/torch_flipflop.pt
    python -m experiments.analyze weights=outputs/torch_flipflop.pt task=flipflop

The network is the one experiments.analyze reads by default: ``nn.RNN(tanh, batch_first=True)``
as ``rnn`` and ``nn.Linear`` as ``readout``, trained with Adam on the masked MSE.
"""

import sys
from pathlib import Path

import jax
import numpy as np
import torch

from schurjax.tasks import make_task


class FlipFlopNet(torch.nn.Module):
    def __init__(self, width: int = 64, bias: bool = False):
        super().__init__()
        self.rnn = torch.nn.RNN(3, width, nonlinearity="tanh", batch_first=True, bias=bias)
        self.readout = torch.nn.Linear(width, 3, bias=bias)

    def forward(self, inputs):
        return self.readout(self.rnn(inputs)[0])


def main(path: str, steps: int = 3000, seed: int = 0) -> None:
    torch.manual_seed(seed)
    task = make_task("flipflop")
    net = FlipFlopNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    data_key = jax.random.key(10_000 + seed)
    for step in range(steps):
        inputs, targets, mask = (torch.from_numpy(np.array(a)) for a in task(jax.random.fold_in(data_key, step), 64))
        loss = ((net(inputs) - targets) ** 2)[mask].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.5f}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    print(f"saved {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/torch_flipflop.pt")
