"""The compiled twin of ops/kl.py: KL(q || p) between diagonal Gaussians, the KL term of eq. (10) (and (3)).

docs/equations.md ("Closed forms") gives, per dimension,
    log(s_p / s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2.
With v = log(s_q / s_p) and t = (mu_q - mu_p) / s_p this is the same number written as
    0.5 * (expm1(2 v) - 2 v + t^2),
which is what we compute: w = 2 v is one float, passed to expm1 and subtracted, so a term is >= 0 whenever the
computed expm1(w) is >= w, as a faithfully rounded expm1 gives (docs/equations.md, "Closed forms").
vecmath.expm1 is held to a few ulps of NumPy's, not to faithful rounding, so KL >= 0 here rests on the
tests (tests/ops/test_kl.py, both float types, both implementations); it is exactly 0 when q equals p.
"""
import numpy as np

from . import vecmath
from ..validate import check_arrays, check_like
from .jit import kernel


def kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p):
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) summed over the last axis: (..., Z) x4 -> (...)."""
    check_arrays(
        mu_q=(mu_q, "... Z"), sigma_q=(sigma_q, "... Z"), mu_p=(mu_p, "... Z"), sigma_p=(sigma_p, "... Z")
    )
    Z = mu_q.shape[-1]
    kl = np.empty(mu_q.shape[:-1], dtype=mu_q.dtype)  # (...)
    rows = [np.ascontiguousarray(a).reshape(-1, Z) for a in (mu_q, sigma_q, mu_p, sigma_p)]  # 4 x (N, Z)
    _kl_gaussian_kernel(*rows, kl.reshape(-1))
    return kl, (mu_q, sigma_q, mu_p, sigma_p)


def kl_gaussian_backward(dkl, cache):
    """Backward of kl_gaussian_forward: returns (dmu_q, dsigma_q, dmu_p, dsigma_p)."""
    mu_q, sigma_q, mu_p, sigma_p = cache
    check_like("dkl", dkl, mu_q.shape[:-1], mu_q.dtype, "...")
    Z = mu_q.shape[-1]
    rows = [np.ascontiguousarray(a).reshape(-1, Z) for a in cache]  # 4 x (N, Z)
    dmu_q, dsigma_q, dsigma_p = (np.empty(mu_q.shape, mu_q.dtype) for _ in range(3))  # C order
    _kl_gaussian_backward_kernel(np.ascontiguousarray(dkl).reshape(-1), *rows,
                                 *(g.reshape(-1, Z) for g in (dmu_q, dsigma_q, dsigma_p)))
    return dmu_q, dsigma_q, -dmu_q, dsigma_p  # d mu_p = -d mu_q: t depends on mu_q - mu_p only


@kernel
def _kl_gaussian_kernel(mu_q, sigma_q, mu_p, sigma_p, kl):
    """kl[n] = sum_z 0.5 * (expm1(2 v) - 2 v + t^2) for arrays of shape (N, Z) -> (N,). The terms are two
    passes over all N*Z entries, 2 v first, then each row's sum in order: a row of Z = 8 is too short to
    vectorise, and one pass doing all of it is too long to vectorise well either (measured: docs/performance.md,
    "Polynomial exp and log")."""
    (N, Z), n = mu_q.shape, mu_q.size
    two, half = mu_q.dtype.type(2.0), mu_q.dtype.type(0.5)
    mq, sq, mp, sp = mu_q.reshape(n), sigma_q.reshape(n), mu_p.reshape(n), sigma_p.reshape(n)
    terms = np.empty(n, mu_q.dtype)
    for i in range(n):
        terms[i] = two * vecmath.log(sq[i] / sp[i])  # 2 v, for now
    for i in range(n):
        t, v2 = (mq[i] - mp[i]) / sp[i], terms[i]
        terms[i] = vecmath.expm1(v2) - v2 + t * t
    for r in range(N):
        total = mu_q.dtype.type(0.0)
        for z in range(Z):
            total += terms[r * Z + z]
        kl[r] = half * total


@kernel
def _kl_gaussian_backward_kernel(dkl, mu_q, sigma_q, mu_p, sigma_p, dmu_q, dsigma_q, dsigma_p):
    """Backward of _kl_gaussian_kernel, per element (g = dkl[n] reaches every z of row n):
        kl = sum_z 0.5 (expm1(2 v) - 2 v + t^2):   dv = g expm1(2 v),  dt = g t
        t = (mu_q - mu_p) / sigma_p:               dmu_q = dt / sigma_p,  dsigma_p = -dt t / sigma_p
        v = log sigma_q - log sigma_p:             dsigma_q = dv / sigma_q,  dsigma_p -= dv / sigma_p
    in passes over all N*Z entries as forward (2 v first, kept in dsigma_q), with g first set beside every
    entry of its row (faster than row by row in one pass; measured: docs/performance.md, "Polynomial exp and
    log")."""
    (N, Z), n = mu_q.shape, mu_q.size
    two = mu_q.dtype.type(2.0)
    mq, sq, mp, sp = mu_q.reshape(n), sigma_q.reshape(n), mu_p.reshape(n), sigma_p.reshape(n)
    dmq, dsq, dsp = dmu_q.reshape(n), dsigma_q.reshape(n), dsigma_p.reshape(n)
    g = np.empty(n, mu_q.dtype)
    for r in range(N):
        for z in range(Z):
            g[r * Z + z] = dkl[r]
    for i in range(n):
        dsq[i] = two * vecmath.log(sq[i] / sp[i])  # 2 v, for now
    for i in range(n):
        t = (mq[i] - mp[i]) / sp[i]
        dv = g[i] * vecmath.expm1(dsq[i])
        dt = g[i] * t
        dmq[i] = dt / sp[i]
        dsq[i] = dv / sq[i]
        dsp[i] = -dt * t / sp[i] - dv / sp[i]
