import jax
import pytest
from jaxtyping import install_import_hook

# Strict promotion catches silent float64/rank broadcasting bugs in traced code early.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# Runtime shape checks of every jaxtyping annotation in the library, during tests only.
with install_import_hook("schurjax", "beartype.beartype"):
    import schurjax  # noqa: F401


@pytest.fixture
def key():
    return jax.random.key(0)
