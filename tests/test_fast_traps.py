"""``traps="fast"``: certified trap counts, SLQ bulk, shared permutations.

References: numpy's full eigensolver of the same shuffled Gram (the count above the
fast path's own threshold, the outliers), the exact path on the same matrix (MP fit,
``rand_distance``), and a sort of the entries (a shuffle is a permutation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope import fast_traps, spectrum
from layerscope.analysis import Analyser
from layerscope.functional import rmt
from layerscope.matrices import MatrixPlan
from layerscope.options import ScanOptions
from reference._compare import assert_close


def _shuffled(kind: str, N: int, M: int, seed: int = 0) -> torch.Tensor:
    """An element-shuffled matrix whose entries are heavy-tailed, shifted or Gaussian."""
    rng = np.random.default_rng([seed, N, M])
    if kind == "student-t":
        W = rng.standard_t(3, size=(N, M))
    elif kind == "mean-shift":
        W = rng.standard_normal((N, M)) + 0.3
    else:
        W = rng.standard_normal((N, M))
    gen = torch.Generator().manual_seed(seed)
    return spectrum.shuffle_entries(torch.as_tensor(W, dtype=torch.float32)[None], gen)[0]


def _exact(Ws: torch.Tensor) -> np.ndarray:
    G = (Ws.mT @ Ws if Ws.shape[0] >= Ws.shape[1] else Ws @ Ws.mT).double().numpy()
    return np.clip(np.linalg.eigvalsh(G), 0.0, None)


# M = 1024–2048 (the fast path runs from M = 2048 by default), aspect ratios 1–3.
CASES = [
    ("student-t", 3072, 1024),
    ("student-t", 1024, 1024),
    ("mean-shift", 2048, 1024),
    ("gaussian", 1024, 2048),
]


@pytest.mark.parametrize(("kind", "N", "M"), CASES)
def test_count_is_certified_and_outliers_are_eigenvalues(kind: str, N: int, M: int) -> None:
    Ws = _shuffled(kind, N, M)
    fast = fast_traps.fast_spectrum(Ws, torch.Generator().manual_seed(1))
    exact = _exact(Ws)
    assert fast.certified
    assert fast.evals.size == exact.size and np.all(np.diff(fast.evals) >= 0)
    # The certified count: exactly the eigenvalues above the fast path's threshold.
    assert fast.num_above == np.count_nonzero(exact > fast.threshold)
    top = exact[exact.size - fast.num_above :]
    assert_close(fast.evals[fast.evals.size - fast.num_above :], top, rtol=1e-4, what="traps")
    assert_close(fast.evals.sum(), exact.sum(), rtol=1e-5, what="trace")
    # Against the exact path's own MP fit on the same matrix: σ and the Tracy-Widom
    # threshold within 1 % (measured ≤ 0.25 % over 3 seeds); counts differ only by
    # eigenvalues between the two thresholds (none here, so the counts are equal).
    Q = max(N, M) / min(N, M)
    ours, ref = rmt.fit_mp(fast.evals, Q, min(N, M)), rmt.fit_mp(exact, Q, min(N, M))
    assert ours.num_spikes == fast.num_above
    assert_close(ours.sigma_mp, ref.sigma_mp, rtol=0.01, what="sigma_mp")
    assert_close(ours.threshold, ref.threshold, rtol=0.01, what="threshold")
    lo, hi = sorted((ours.threshold, ref.threshold))
    between = np.count_nonzero((exact > lo) & (exact <= hi))
    assert abs(ours.num_spikes - ref.num_spikes) == between == 0
    # rand_distance's comparison: the pseudo-spectrum against the exact one (JS distance,
    # measured ≤ 0.0063).
    assert rmt.jensen_shannon_distance(exact, fast.evals) <= 0.01


def test_trap_counts_cover_all_three_regimes() -> None:
    """The cases above are not vacuous: many traps, one (the mean), none."""
    counts = {
        kind: fast_traps.fast_spectrum(_shuffled(kind, N, M), torch.Generator()).num_above
        for kind, N, M in CASES[::2] + CASES[3:]
    }
    assert counts["student-t"] >= 3 and counts["mean-shift"] == 1 and counts["gaussian"] == 0


def test_failed_certificate_falls_back_to_the_exact_spectrum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Ritz value may count as converged: the traps go unfound and the check fails."""
    monkeypatch.setattr(fast_traps, "RITZ_RTOL", 0.0)
    Ws = _shuffled("mean-shift", 2048, 1024)
    fast = fast_traps.fast_spectrum(Ws, torch.Generator().manual_seed(1))
    exact = _exact(Ws)
    assert not fast.certified
    assert_close(fast.evals, exact, rtol=1e-4, atol=1e-4 * exact[-1], what="exact fallback")
    assert fast.num_above == rmt.fit_mp(exact, 2.0, 1024).num_spikes == 1


def test_shared_permutation_is_a_seeded_uniform_shuffle() -> None:
    W = torch.arange(600, dtype=torch.float32).reshape(30, 20)
    perms = fast_traps.SharedPermutations(seed=7)
    a, b = perms.shuffle(W, 11), perms.shuffle(W, 12)
    for s in (a, b):
        assert torch.equal(s.reshape(-1).sort().values, W.reshape(-1))
    assert not torch.equal(a, b)
    # Rotating the shared permutation by one more step moves every entry along by one.
    assert torch.equal(b.reshape(-1)[:-1], a.reshape(-1)[1:])
    again = fast_traps.SharedPermutations(seed=7).shuffle(W, 11)
    assert torch.equal(a, again)
    assert not torch.equal(a, fast_traps.SharedPermutations(seed=8).shuffle(W, 11))
    # Each entry lands everywhere with equal frequency over offsets (uniform marginals).
    where = torch.stack([perms.shuffle(W, s).reshape(-1) == 0 for s in range(600)]).sum(0)
    assert torch.all(where == 1)


def test_options_validate_traps() -> None:
    assert ScanOptions(traps="fast").traps == "fast"
    with pytest.raises(ValueError, match="traps must be 'exact' or 'fast'"):
        ScanOptions(traps="approx")


def test_small_matrices_stay_exact() -> None:
    """Below MIN_SIZE both settings run the same exact code (so do conv slices)."""
    W = torch.as_tensor(np.random.default_rng(0).standard_t(3, size=(1, 300, 200)))
    plan = MatrixPlan("w", "w", "linear", 300, 200, 1, 1.0, lambda t: t)
    rows = [
        Analyser(ScanOptions(metrics="all", traps=t)).analyse(plan, W)[0] for t in ("exact", "fast")
    ]
    for col in ("num_traps", "rand_distance", "rand_sigma_mp", "trap_scale"):
        assert rows[0][col] == rows[1][col]


@pytest.mark.parametrize(("N", "M"), [(700, 513), (1100, 1100), (3000, 1030)])
def test_symmetric_gram_is_wtw_with_both_triangles(N: int, M: int) -> None:
    W = torch.as_tensor(np.random.default_rng(N).standard_normal((N, M)), dtype=torch.float32)
    G = fast_traps.symmetric_gram(W)
    assert torch.equal(G, G.mT)
    ref = W.double().numpy().T @ W.double().numpy()
    assert_close(G.double().numpy(), ref, atol=1e-6 * np.abs(ref).max(), what="Gram")
