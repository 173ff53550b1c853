"""Networks trained elsewhere: loaders, their errors, and an end-to-end PyTorch round trip."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schurjax.imports import TorchKeys, load_inputs, load_networks, load_npz
from schurjax.pipeline import read_results

ROOT = Path(__file__).resolve().parents[1]


def _weights(tmp_path, name="net.npz", width=6, n_in=3, n_out=3, **overrides):
    rng = np.random.default_rng(0)
    arrays = dict(
        W_xh=rng.normal(size=(width, n_in)),
        W_hh=rng.normal(size=(width, width)) / width,
        W_hy=rng.normal(size=(n_out, width)),
    ) | overrides
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_npz_round_trip(tmp_path):
    weights = load_npz(_weights(tmp_path, b_h=np.ones(6), b_y=np.zeros(3)))
    assert weights.w_hh.shape == (6, 6) and weights.b_h.shape == (6,) and weights.w_hh.dtype == np.float64


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(W_hh=None), "missing W_hh"),
        (dict(W_hh=np.ones((6, 5))), "W_hh must be square"),
        (dict(W_xh=np.ones((5, 3))), "W_xh has shape \\(5, 3\\), expected \\[6, Nx\\]"),
        (dict(W_hy=np.ones((3, 7))), "W_hy has shape"),
        (dict(b_h=np.ones(5)), "b_h has shape"),
        (dict(W_hh=np.full((6, 6), np.nan)), "36 NaN/inf"),
        (dict(W_xh=np.array([["a"] * 3] * 6)), "must be a real array"),
    ],
)
def test_bad_npz_is_refused_clearly(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_npz(_weights(tmp_path, **overrides))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="no such weights file"):
        load_networks(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .npz, .pt or .pth"):
        load_networks(empty)


def test_directory_loads_every_network_sorted(tmp_path):
    _weights(tmp_path, "b.npz")
    _weights(tmp_path, "a.npz", width=4)
    assert [(name, w.width) for name, w in load_networks(tmp_path)] == [("a.npz", 4), ("b.npz", 6)]


def test_user_inputs_are_validated(tmp_path):
    np.savez(tmp_path / "in.npz", inputs=np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match="inputs must be \\[B, T, 3\\]"):
        load_inputs(tmp_path / "in.npz", 3)
    np.savez(tmp_path / "in.npz", inputs=np.zeros((4, 5, 3)), targets=np.zeros((4, 6, 1)))
    with pytest.raises(ValueError, match="targets must be"):
        load_inputs(tmp_path / "in.npz", 3)
    np.savez(tmp_path / "in.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="needs an 'inputs' array"):
        load_inputs(tmp_path / "in.npz", 3)


def _analyze(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, "-m", "experiments.analyze", f"hydra.run.dir={tmp_path / 'run'}", "progress=false",
         "eval.trials=64", "eval.random_controls=2", *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def test_analyze_refuses_a_network_that_does_not_fit_the_task(tmp_path):
    done = _analyze(tmp_path, f"weights={_weights(tmp_path, n_in=2)}", "task=flipflop")
    assert done.returncode != 0 and "task 'flipflop' has 3 inputs" in done.stderr
    assert "Traceback" not in done.stderr


def test_analyze_user_inputs_without_targets_reports_rollout_distance(tmp_path):
    path = _weights(tmp_path)
    np.savez(tmp_path / "trials.npz", inputs=np.random.default_rng(1).normal(size=(16, 12, 3)))
    done = _analyze(tmp_path, f"weights={path}", f"inputs={tmp_path / 'trials.npz'}")
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "run" / "results.csv")
    assert len(rows) == 8 and {r["task"] for r in rows} == {"custom"}
    assert all(r["fvu"] is None and r["s_delta_t_note"] in ("full model", "no targets given") for r in rows)
    # the full network against its own reference rollout (two compiled programs: float32 round-off)
    assert rows[0]["rollout_distance"] < 1e-6
    assert all(r["rollout_distance"] >= 0 for r in rows[1:])


def test_pytorch_trained_flipflop_network_end_to_end(tmp_path):
    torch = pytest.importorskip("torch")
    import jax

    from schurjax.tasks import make_task

    torch.manual_seed(0)
    task = make_task("flipflop")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(3, 24, nonlinearity="tanh", batch_first=True)
            self.readout = torch.nn.Linear(24, 3)

        def forward(self, x):
            return self.readout(self.rnn(x)[0])

    net = Net()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(150):
        x, y, m = (torch.from_numpy(np.array(a)) for a in task(jax.random.key(step), 32))
        loss = ((net(x) - y) ** 2)[m].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    torch.save(net.state_dict(), tmp_path / "flipflop.pt")

    # what PyTorch computes on the held-out set the analysis uses (eval.trials=64, default seed)
    from schurjax.evaluate import EvalConfig, held_out_set

    x, y, m = (np.array(a) for a in held_out_set(task, EvalConfig(trials=64)))
    with torch.no_grad():
        outputs = net(torch.from_numpy(x)).numpy().astype(np.float64)
    targets = np.where(m, y, np.nan)
    torch_fvu = np.nansum((np.where(m, outputs, np.nan) - targets) ** 2) / np.nansum(
        (targets - np.nanmean(targets, axis=(0, 1))) ** 2
    )

    done = _analyze(tmp_path, f"weights={tmp_path / 'flipflop.pt'}", "task=flipflop")
    assert done.returncode == 0, done.stderr
    rows = read_results(tmp_path / "run" / "results.csv")
    full = rows[0]
    assert full["subset"] == "none" and full["source"] == "flipflop.pt"
    # float32 rollouts of the same weights in two frameworks: agreement to ~1e-5 relative
    assert full["fvu"] == pytest.approx(torch_fvu, rel=1e-4)
    assert torch_fvu < 0.5  # it did learn something
    assert all(r["ctrl_raw_median"] is not None for r in rows[1:] if r["removed_mass"] > 1e-6)
    assert (tmp_path / "run" / "figures" / "flipflop_random_controls.png").exists()


def test_torch_prefixes_are_configurable(tmp_path):
    torch = pytest.importorskip("torch")
    rnn = torch.nn.RNN(2, 5, nonlinearity="tanh", batch_first=True, bias=False)
    head = torch.nn.Linear(5, 1, bias=False)
    state = {f"encoder.{k}": v for k, v in rnn.state_dict().items()} | {
        f"head.{k}": v for k, v in head.state_dict().items()
    }
    torch.save(state, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="missing rnn.weight_ih_l0.*torch.rnn_prefix"):
        load_networks(tmp_path / "m.pt")
    ((_, weights),) = load_networks(tmp_path / "m.pt", TorchKeys(rnn_prefix="encoder.", readout_prefix="head."))
    np.testing.assert_array_equal(weights.w_hh, rnn.weight_hh_l0.detach().numpy().astype(np.float64))
    assert weights.b_h is None and weights.b_y is None
