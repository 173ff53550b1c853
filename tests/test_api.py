"""The public API: ``import schurjax`` gives the names a notebook needs, and nothing of the
command line."""

import json
import subprocess
import sys

import schurjax

# Run in a fresh interpreter: this test process has imported Hydra and experiments/ already.
SCRIPT = """
import json, sys
import schurjax
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"experiments", "hydra", "omegaconf"})
devices = schurjax.use_cpu_cores(2)  # still possible after the import: nothing has computed yet
import jax
print(json.dumps({"loaded": loaded, "devices": [devices, jax.device_count()]}))
"""


def test_every_public_name_imports_and_is_documented():
    assert len(schurjax.__all__) == len(set(schurjax.__all__))
    for name in schurjax.__all__:
        value = getattr(schurjax, name)
        assert value.__module__.startswith("schurjax.") and value.__doc__, name
        assert f"``{value.__module__.removeprefix('schurjax.')}``" in schurjax.__doc__, f"module map lacks {name}"


def test_importing_schurjax_imports_no_command_line_code_and_computes_nothing():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"loaded": [], "devices": [2, 2]}
