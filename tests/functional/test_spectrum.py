"""spectrum.eigenvalues against numpy's SVD; shuffle_entries is a seeded permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope import _mkl, spectrum
from reference._compare import assert_close


def _svd_evals(W: np.ndarray) -> np.ndarray:
    """Reference: σᵢ² of every matrix (float64 SVD), pooled and sorted ascending."""
    batch = W if W.ndim == 3 else W[None]
    return np.sort(np.concatenate([np.linalg.svd(w, compute_uv=False) ** 2 for w in batch]))


def _check(ours: np.ndarray, expected: np.ndarray, rel_top: float, abs_all: float) -> None:
    """rel ``rel_top`` on the top decile (non-zero ones); |Δ| ≤ ``abs_all``·λ_max everywhere."""
    assert ours.shape == expected.shape
    assert np.all(np.diff(ours) >= 0) and np.all(ours >= 0)
    lam_max = expected.max()
    top = _top(expected)
    assert_close(ours[top], expected[top], rtol=rel_top, what="top eigenvalues")
    assert_close(ours, expected, atol=abs_all * lam_max, what="all eigenvalues")


def _top(evals: np.ndarray) -> np.ndarray:
    return (evals >= np.quantile(evals, 0.9)) & (evals > 1e-6 * evals.max())


def _heavy(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(3, size=shape)


CASES = {
    "tall": _heavy((300, 120), 0),
    "wide": _heavy((90, 250), 1),
    "square": _heavy((128, 128), 2),
    "batched": _heavy((9, 64, 40), 3),
    "batched-wide": _heavy((4, 30, 70), 4),
    "rank-deficient": _heavy((200, 5), 5) @ _heavy((5, 80), 6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_float64_equals_svd(case: str) -> None:
    W = CASES[case]
    ours = spectrum.eigenvalues(torch.as_tensor(W))
    _check(ours, _svd_evals(W), rel_top=1e-10, abs_all=1e-12)


@pytest.mark.parametrize("case", ["tall", "wide", "batched"])
def test_float32_input_and_float32_accumulation(case: str) -> None:
    W32 = torch.as_tensor(CASES[case], dtype=torch.float32)
    exact = _svd_evals(W32.double().numpy())
    _check(spectrum.eigenvalues(W32), exact, rel_top=1e-10, abs_all=1e-12)
    fast = spectrum.eigenvalues(W32, precision="float32")
    top = _top(exact)
    assert_close(fast[top], exact[top], rtol=1e-5, what="float32 Gram, top eigenvalues")


def test_bfloat16_input_is_exact_in_float64() -> None:
    W = torch.as_tensor(CASES["tall"], dtype=torch.bfloat16)
    _check(spectrum.eigenvalues(W), _svd_evals(W.double().numpy()), rel_top=1e-10, abs_all=1e-12)


@pytest.mark.parametrize("case", ["tall", "wide", "batched", "rank-deficient"])
@pytest.mark.parametrize("block_elements", [1, 500, 4096])
def test_blocked_accumulation(
    case: str, block_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spectrum, "_ROW_BLOCK_ELEMENTS", block_elements)
    W = CASES[case]
    _check(spectrum.eigenvalues(torch.as_tensor(W)), _svd_evals(W), rel_top=1e-10, abs_all=1e-12)
    W32 = torch.as_tensor(W, dtype=torch.float32)
    exact = _svd_evals(W32.double().numpy())
    top = _top(exact)
    fast = spectrum.eigenvalues(W32, precision="float32")
    assert_close(fast[top], exact[top], rtol=1e-5, what="blocked float32 Gram")


def test_gram_blocks_equal_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    # gram fills the upper triangle (the eigensolver reads only that one).
    W = torch.as_tensor(CASES["batched"])
    one_shot = spectrum.gram(W).triu()
    monkeypatch.setattr(spectrum, "_ROW_BLOCK_ELEMENTS", 100)
    blocked = spectrum.gram(W).triu()
    assert_close(blocked.numpy(), one_shot.numpy(), rtol=1e-13, atol=1e-10, what="gram")
    want = np.triu(np.einsum("bnm,bnk->bmk", W.numpy(), W.numpy()))
    assert_close(one_shot.numpy(), want, rtol=1e-12, atol=1e-9, what="gram vs einsum")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["rows", "transposed", "strided"])
def test_syrk_matches_matmul_in_every_layout(dtype: torch.dtype, layout: str) -> None:
    g = torch.Generator().manual_seed(3)
    base = torch.randn(90, 40, dtype=dtype, generator=g)
    A = {
        "rows": base,  # unit column stride: a row block of W
        "transposed": base.mT.contiguous().mT,  # unit row stride: a block of W's transpose
        "strided": base[::2, ::3],  # neither: copied first
    }[layout]
    n = A.shape[1]
    C = torch.full((n, n), 7.0, dtype=dtype)
    if not _mkl.syrk_upper(C, A, beta=1.0):
        pytest.skip("this torch build has no usable MKL syrk")
    want = (A.double().mT @ A.double() + 7.0).triu()
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert_close(C.triu().double().numpy(), want.numpy(), rtol=tol, atol=tol, what="syrk")


def _solves(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    """Record the dtype of every Gram solve that ``eigenvalues`` runs."""
    calls: list[torch.dtype] = []
    solve = spectrum._solve

    def spy(W: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        calls.append(dtype)
        return solve(W, dtype)

    monkeypatch.setattr(spectrum, "_solve", spy)
    return calls


AUTO_CASES = {
    # case: (matrix, dtypes of the solves "auto" must run)
    "tall, well conditioned": (_heavy((600, 120), 8), [torch.float32]),
    "tall batch": (_heavy((3, 260, 64), 9), [torch.float32]),
    "wide (transposed to tall)": (_heavy((50, 400), 10), [torch.float32]),
    "square": (CASES["square"], [torch.float64]),
    "aspect below 2": (_heavy((230, 120), 11), [torch.float64]),
    "tall, rank-deficient": (CASES["rank-deficient"].T.copy(), [torch.float32, torch.float64]),
    "tall, ill-conditioned": (
        _heavy((400, 100), 12) * np.logspace(0, -3, 100),
        [torch.float32, torch.float64],
    ),
}


@pytest.mark.parametrize("case", list(AUTO_CASES))
def test_auto_precision_is_verified_float32_or_float64(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    W, expected_solves = AUTO_CASES[case]
    W32 = torch.as_tensor(W, dtype=torch.float32)
    calls = _solves(monkeypatch)
    auto = spectrum.eigenvalues(W32, precision="auto")
    assert calls == expected_solves
    exact = _svd_evals(W32.double().numpy())
    if expected_solves[-1] == torch.float64:
        _check(auto, exact, rel_top=1e-10, abs_all=1e-12)
    else:
        # The guarantee of the module docstring: every eigenvalue within 1e-3 relative.
        assert_close(auto, exact, rtol=1e-3, what="auto (float32) eigenvalues, all")
        assert_close(auto[_top(exact)], exact[_top(exact)], rtol=1e-5, what="top")


def test_rank_deficient_zeros_are_tiny() -> None:
    ours = spectrum.eigenvalues(torch.as_tensor(CASES["rank-deficient"]))
    assert np.count_nonzero(ours > 1e-9 * ours.max()) == 5


@pytest.mark.parametrize("shape", [(1, 50, 20), (3, 40, 40), (2, 10, 60)])
def test_shuffle_entries_permutes_each_slice(shape: tuple[int, int, int]) -> None:
    W = torch.as_tensor(_heavy(shape, 7))
    shuffled = spectrum.shuffle_entries(W, torch.Generator().manual_seed(0))
    assert shuffled.shape == W.shape and shuffled.dtype == W.dtype
    for b in range(shape[0]):
        assert torch.equal(
            torch.sort(shuffled[b].flatten()).values, torch.sort(W[b].flatten()).values
        )
        assert not torch.equal(shuffled[b], W[b])
    # the squared Frobenius norm (= Σλ) of every slice is unchanged
    assert_close(
        (shuffled**2).sum(dim=(1, 2)).numpy(),
        (W**2).sum(dim=(1, 2)).numpy(),
        rtol=1e-12,
        what="Frobenius norms",
    )


def test_shuffle_entries_deterministic_under_seed() -> None:
    W = torch.as_tensor(_heavy((4, 30, 20), 8))

    def shuffle(seed: int) -> torch.Tensor:
        return spectrum.shuffle_entries(W, torch.Generator().manual_seed(seed))

    assert torch.equal(shuffle(3), shuffle(3))
    assert not torch.equal(shuffle(3), shuffle(4))
    gen = torch.Generator().manual_seed(3)
    first, second = spectrum.shuffle_entries(W, gen), spectrum.shuffle_entries(W, gen)
    assert not torch.equal(first, second)  # the generator advances
    assert torch.equal(first, shuffle(3))


def test_resolve_device() -> None:
    assert spectrum.resolve_device("cpu") == torch.device("cpu")
    assert spectrum.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device must be"):
        spectrum.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            spectrum.resolve_device("cuda")


@pytest.mark.parametrize("shape", [(300, 120), (120, 300), (64, 64)])
def test_top_eigenvalue_matches_svd(shape: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(11)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    w[:, 0] *= 5.0  # a spike, as trained weights have
    ref = float(np.linalg.svd(w.numpy(), compute_uv=False)[0] ** 2)
    assert spectrum.top_eigenvalue(w) == pytest.approx(ref, rel=1e-5)
    noise = torch.randn(*shape, generator=g, dtype=torch.float64)  # crowded top: looser
    ref_noise = float(np.linalg.svd(noise.numpy(), compute_uv=False)[0] ** 2)
    assert spectrum.top_eigenvalue(noise) == pytest.approx(ref_noise, rel=2e-3)


def test_lapack_single_thread_is_scoped_to_the_call() -> None:
    set_local = spectrum._mkl.local_threads()
    if set_local is None:
        pytest.skip("this torch build exports no MKL thread-local setter")
    before = set_local(0)
    with spectrum._lapack_single_thread(torch.device("cpu")):
        inside = set_local(1)
    after = set_local(before)
    assert (inside, after) == (1, 0)
    W = torch.as_tensor(CASES["tall"])
    _check(spectrum.eigenvalues(W), _svd_evals(CASES["tall"]), rel_top=1e-10, abs_all=1e-12)
