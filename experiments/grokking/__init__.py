"""Grokking and generalization collapse (Prakash & Martin 2025) on a small MLP; see train.py."""
