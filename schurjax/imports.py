"""Networks trained elsewhere: read and validate their weights and inputs — host only.

Accepted: ``.npz`` files with ``W_xh [Nh,Nx]``, ``W_hh [Nh,Nh]``, ``W_hy [Ny,Nh]`` and optional
``b_h [Nh]``, ``b_y [Ny]`` (the layout ``models/*.npz`` of a run uses), and PyTorch state dicts of
``nn.RNN(nonlinearity='tanh', batch_first=True)`` + ``nn.Linear`` (``.pt``/``.pth``). Every check
raises a ValueError that names the file, the key and the fix.
"""

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from .results import NPZ_KEYS
from .weights import RNNWeights

NPZ_SUFFIXES = (".npz",)
TORCH_SUFFIXES = (".pt", ".pth")


@dataclasses.dataclass(frozen=True)
class TorchKeys:
    """Where the tensors sit in a state dict; prefixes are configurable for other module names."""

    rnn_prefix: str = "rnn."
    readout_prefix: str = "readout."


def checked_weights(arrays: dict[str, np.ndarray | None], source: str) -> RNNWeights:
    """RNNWeights from arrays named as in the npz (W_xh, W_hh, W_hy, b_h, b_y), after checking
    that their shapes agree with each other and that every entry is finite."""
    w_hh = arrays["W_hh"]
    if w_hh.ndim != 2 or w_hh.shape[0] != w_hh.shape[1]:
        raise ValueError(f"{source}: W_hh must be square [Nh, Nh]; got shape {w_hh.shape}")
    width = w_hh.shape[0]
    n_out = arrays["W_hy"].shape[0] if arrays["W_hy"].ndim == 2 else None
    expected = {
        "W_xh": (f"[{width}, Nx]", lambda s: len(s) == 2 and s[0] == width),
        "W_hy": (f"[Ny, {width}]", lambda s: len(s) == 2 and s[1] == width),
        "b_h": (f"[{width}]", lambda s: s == (width,)),
        "b_y": (f"[{n_out}]", lambda s: s == (n_out,)),
    }
    for name, (shape, fits) in expected.items():
        array = arrays.get(name)
        if array is not None and not fits(array.shape):
            raise ValueError(
                f"{source}: {name} has shape {array.shape}, expected {shape} for a width-{width} network "
                "(weights are in PyTorch orientation: W_xh [Nh,Nx], W_hy [Ny,Nh])"
            )
    for name, array in arrays.items():
        bad = 0 if array is None else int((~np.isfinite(array)).sum())
        if bad:
            raise ValueError(f"{source}: {name} has {bad} NaN/inf entries; export finite weights")
    return RNNWeights(**{_FIELDS[name]: array for name, array in arrays.items() if array is not None})


def check_against_task(weights: RNNWeights, n_in: int, n_out: int, source: str, task: str) -> None:
    if weights.w_xh.shape[1] != n_in or weights.w_hy.shape[0] != n_out:
        raise ValueError(
            f"{source}: the network takes {weights.w_xh.shape[1]} inputs and gives "
            f"{weights.w_hy.shape[0]} outputs, but task {task!r} has {n_in} inputs and {n_out} outputs; "
            "choose the matching task or supply your own inputs (inputs=<file.npz>)"
        )


def _float_array(value, source: str, key: str) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{source}: {key} must be a real array; got dtype {array.dtype}")
    return array.astype(np.float64)


def _open_npz(path: str | Path, what: str):
    """np.load of an .npz, with a missing or unreadable file as a ValueError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such {what} file") from None
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable .npz archive ({error})") from None


def load_npz(path: str | Path) -> RNNWeights:
    """Weights from an ``.npz`` with W_xh, W_hh, W_hy (+ optional b_h, b_y)."""
    source = str(path)
    with _open_npz(path, "weights") as archive:
        missing = [key for key in ("W_xh", "W_hh", "W_hy") if key not in archive.files]
        if missing:
            raise ValueError(
                f"{source}: missing {', '.join(missing)}; an .npz needs W_xh [Nh,Nx], W_hh [Nh,Nh], "
                f"W_hy [Ny,Nh] (optional b_h, b_y); it holds {', '.join(archive.files) or 'nothing'}"
            )
        arrays = {key: _float_array(archive[key], source, key) for key in archive.files if key in _FIELDS}
    return checked_weights(arrays, source)


# npz key -> RNNWeights field: the layout models/*.npz is written in
_FIELDS = {key: field for field, key in NPZ_KEYS.items()}


def load_torch(path: str | Path, keys: TorchKeys = TorchKeys()) -> RNNWeights:
    """Weights from a state dict of ``nn.RNN(tanh)`` + ``nn.Linear``; b_h = b_ih + b_hh."""
    source = str(path)
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"{source}: reading PyTorch state dicts needs torch; install it with pip install -e '.[torch]'"
        ) from None
    if not Path(path).is_file():
        raise ValueError(f"{source}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a state dict
        raise ValueError(f"{source}: not a readable PyTorch state dict ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict (model.state_dict()), got {type(state).__name__}")
    rnn, readout = keys.rnn_prefix, keys.readout_prefix
    required = [f"{rnn}weight_ih_l0", f"{rnn}weight_hh_l0", f"{readout}weight"]
    missing = [key for key in required if key not in state]
    if missing:
        raise ValueError(
            f"{source}: missing {', '.join(missing)}; present keys: {', '.join(state)}. "
            "Set torch.rnn_prefix / torch.readout_prefix to your module names"
        )

    def array(key: str) -> np.ndarray | None:
        return None if key not in state else _float_array(state[key].detach().numpy(), source, key)

    b_ih, b_hh = array(f"{rnn}bias_ih_l0"), array(f"{rnn}bias_hh_l0")
    b_h = None if b_ih is None and b_hh is None else (0 if b_ih is None else b_ih) + (0 if b_hh is None else b_hh)
    arrays = {
        "W_xh": array(f"{rnn}weight_ih_l0"),
        "W_hh": array(f"{rnn}weight_hh_l0"),
        "W_hy": array(f"{readout}weight"),
        "b_h": b_h,
        "b_y": array(f"{readout}bias"),
    }
    return checked_weights(arrays, source)


def load_networks(path: str | Path, keys: TorchKeys = TorchKeys()) -> list[tuple[str, RNNWeights]]:
    """One weights file, or every .npz/.pt/.pth file of a directory (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in NPZ_SUFFIXES + TORCH_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: the directory holds no .npz, .pt or .pth weights files")
    elif path.exists():
        files = [path]
    else:
        raise ValueError(f"{path}: no such weights file or directory")
    networks = []
    for file in files:
        if file.suffix in TORCH_SUFFIXES:
            networks.append((file.name, load_torch(file, keys)))
        elif file.suffix in NPZ_SUFFIXES:
            networks.append((file.name, load_npz(file)))
        else:
            raise ValueError(f"{file}: unknown weights format; use .npz, .pt or .pth")
    return networks


def load_inputs(path: str | Path, n_in: int):
    """User trials from an ``.npz``: inputs [B,T,Nx], optional targets [B,T,Ny] and mask.

    Returns ``(inputs, targets or None, mask or None)`` as float32/bool numpy arrays; a mask of
    shape [B,T] is broadcast over output channels by the caller.
    """
    source = str(path)
    with _open_npz(path, "inputs") as archive:
        if "inputs" not in archive.files:
            raise ValueError(f"{source}: needs an 'inputs' array [B, T, Nx]; it holds {', '.join(archive.files)}")
        inputs = _float_array(archive["inputs"], source, "inputs")
        targets = _float_array(archive["targets"], source, "targets") if "targets" in archive.files else None
        mask = np.asarray(archive["mask"]).astype(bool) if "mask" in archive.files else None
    if inputs.ndim != 3 or inputs.shape[2] != n_in:
        raise ValueError(f"{source}: inputs must be [B, T, {n_in}] for this network; got {inputs.shape}")
    if targets is not None and (targets.ndim != 3 or targets.shape[:2] != inputs.shape[:2]):
        raise ValueError(
            f"{source}: targets must be [B, T, Ny] matching inputs {inputs.shape[:2]}; got {targets.shape}"
        )
    if mask is not None and mask.shape not in (inputs.shape[:2], (*inputs.shape[:2], mask.shape[-1])):
        raise ValueError(f"{source}: mask must be [B, T] or [B, T, Ny]; got {mask.shape}")
    if not np.isfinite(inputs).all() or (targets is not None and not np.isfinite(targets).all()):
        raise ValueError(f"{source}: inputs/targets contain NaN or inf")
    return inputs.astype(np.float32), None if targets is None else targets.astype(np.float32), mask
