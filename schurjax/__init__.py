"""schurjax: structured ablations of trained tanh RNNs in ordered real Schur coordinates.

Traced (JAX) modules: tasks, constructions, model, metrics, train, evaluate.
Host (numpy/scipy) modules: schur, interventions, controls, results, cache, imports, plots.
``pipeline`` runs them as named stages (spec, training, scoring, learning; columns, timing);
``experiments/`` holds the Hydra entry points.
"""
