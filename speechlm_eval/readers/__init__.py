"""Readers for official dataset layouts.

Each is ``read(root: Path, options: dict) -> ChoiceDataset``.
"""
