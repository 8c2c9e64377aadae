"""Scorers turn per-file scores (higher = more likely) into task metrics."""
