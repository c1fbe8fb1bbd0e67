"""Memorization capacity in bits per parameter (Morris et al. 2025, arXiv 2505.24832)."""
