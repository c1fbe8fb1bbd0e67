"""The LLC over grokking of modular addition (SCIENCE.md §6, issue 6); see train.py."""
