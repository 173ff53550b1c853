"""Array shape aliases shared by the traced (JAX) and host (numpy) modules.

Dimension names: ``B`` trials, ``T`` time steps, ``Nx`` inputs, ``Nh`` hidden units,
``Ny`` outputs, ``M`` stacked models.  Annotations are checked with beartype in the tests only.
"""

from jaxtyping import Array, Bool, Float, Int, Key, PRNGKeyArray

__all__ = ["Array", "Bool", "Float", "Int", "Key", "PRNGKeyArray"]
