"""Reproductions of published results (run from the repository root: python -m experiments...)."""
