"""flowsim's benchmarks: scripts that print ratios, ``run.py`` for all of them and
RESULTS.md, and asv classes in ``asv_benchmarks.py``."""
