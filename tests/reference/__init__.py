"""Side-by-side checks against the pinned anchors (WeightWatcher 0.7.7)."""
