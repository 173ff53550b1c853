"""The paper's reproduction behind ``python -m experiments.paper``: its suites (``suites``), the
paper's numbers, verdict rules and report (``report``), and the side-by-side comparison of
training protocols that is published to docs/ (``comparison``)."""
