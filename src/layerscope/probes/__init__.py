"""Data-dependent measures that need inputs as well as weights.

* :mod:`layerscope.probes.baselines`: the competing grokking metrics of Golechha 2024
  (L2 weight norm, activation sparsity, absolute weight entropy, approximate local
  circuit complexity);
* :mod:`layerscope.probes.llc`: the local learning coefficient (SGLD);
* :mod:`layerscope.probes.memorization`: memorized bits of a causal LM over a reference
  (Morris et al. 2025, arXiv 2505.24832);
* :mod:`layerscope.probes.attribution`: which candidate documents explain a fine-tune's
  weight update (SELECT, Morris et al. 2025, arXiv 2506.15553).

Submodules are imported on use; importing this package imports none of them.
"""
