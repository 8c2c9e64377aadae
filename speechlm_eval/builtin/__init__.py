"""The built-in benchmark suite: small versions of the field's benchmarks, synthesised here.

``slm-eval data build`` writes them in the official layouts, so the readers that load
the official data load these too. See ``build.py`` for the orchestration and
``subsets/`` for one module per benchmark.
"""
