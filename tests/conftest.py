import jax
import pytest
from jaxtyping import install_import_hook

# Strict promotion catches silent float64/rank broadcasting bugs in traced code early.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# Runtime shape checks of every jaxtyping annotation in the library, during tests only: the
# hook stays installed for the session so every schurjax module imported by a test is checked.
install_import_hook("schurjax", "beartype.beartype")


@pytest.fixture
def key():
    return jax.random.key(0)
