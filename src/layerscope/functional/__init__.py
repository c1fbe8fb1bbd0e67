"""The pure core: metric functions on numpy arrays (no I/O, no torch, no printing)."""
