"""schurjax: structured ablations of trained tanh RNNs in ordered real Schur coordinates.

Traced (JAX) modules: tasks, constructions, model, metrics, train, evaluate.
Host (numpy/scipy) modules: schur, interventions, controls, results, cache, imports, plots.
``pipeline`` joins them; ``experiments/`` holds the Hydra entry points.
"""
