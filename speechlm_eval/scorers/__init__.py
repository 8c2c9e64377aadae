"""Scorers: each sample scored on its own (``SampleScore``), then aggregated into metrics.

The contract is in :mod:`.base`; the aggregation helpers in :mod:`speechlm_eval.metrics`;
N samples per prompt are folded by :mod:`.reducers`; free-text answers are parsed by the
filter chains of :mod:`.extract`.
"""
