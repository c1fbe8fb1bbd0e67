"""The LLC over grokking of modular addition (docs/science.md §8, issue 6); see train.py."""
