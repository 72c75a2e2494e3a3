"""The compiled twin of ops/gaussian.py: the diagonal Gaussian log-density of eq. (5) (and eq. (2))

    log N(x; mu, sigma) = -0.5 * sum_d [ log(2 pi) + 2 log sigma_d + u_d^2 ],   u = (x - mu) / sigma

(docs/equations.md, "Closed forms"). The per-row kernel ``gaussian_row`` is shared with the mixture in gmm.py.
"""
import numpy as np

from . import vecmath
from ..ops import gaussian as readable
from ..ops.gaussian import LOG_2PI
from ..validate import check_arrays, check_like
from .jit import kernel
from .matmul import ones


def gaussian_logpdf_forward(x, mu, sigma):
    """log N(x; mu, diag(sigma^2)), summed over the last axis: (..., D) x3 -> (...); returns (logp, cache)."""
    check_arrays(x=(x, "... D"), mu=(mu, "... D"), sigma=(sigma, "... D"))
    D = x.shape[-1]
    rows = [np.ascontiguousarray(a).reshape(-1, D) for a in (x, mu, sigma)]  # 3 x (N, D)
    terms = np.empty_like(rows[0])  # 2 log sigma_d + u_d^2, one vectorised pass
    _gaussian_terms_kernel(*rows, terms)
    # each row's sum as a product with ones: BLAS's is several times faster than NumPy's sum along axis 1 at
    # these shapes (measured: docs/performance.md, "Fused passes")
    logp = x.dtype.type(-0.5) * (terms @ ones(D, x.dtype) + x.dtype.type(D * LOG_2PI))
    return logp.reshape(x.shape[:-1]), (x, mu, sigma)


def gaussian_logpdf_backward(dlogp, cache):
    """Backward of gaussian_logpdf_forward: returns (dx, dmu, dsigma).

    gmm.py reuses it for all K components at once, with x of shape (..., 1, D) broadcast against mu (..., K, D):
    that case is ops/gaussian.py's NumPy with broadcasting; same-shape arrays take one compiled pass.
    """
    x, mu, sigma = cache
    check_like("dlogp", dlogp, mu.shape[:-1], mu.dtype, "...")  # mu's, not x's: gmm.py broadcasts x
    if x.shape == mu.shape == sigma.shape:
        D = x.shape[-1]
        rows = [np.ascontiguousarray(a).reshape(-1, D) for a in (x, mu, sigma)]
        dx, dsigma = np.empty_like(rows[0]), np.empty_like(rows[0])
        _gaussian_backward_kernel(np.ascontiguousarray(dlogp).reshape(-1), *rows, dx, dsigma)
        dx, dsigma = dx.reshape(x.shape), dsigma.reshape(x.shape)
        return dx, -dx, dsigma
    return readable.gaussian_logpdf_backward(dlogp, cache)


@kernel
def gaussian_row(x, mu, sigma):
    """log N(x; mu, diag(sigma^2)) of one row: 1-D arrays of D values -> a scalar of their dtype."""
    log_2pi, two, half = x.dtype.type(LOG_2PI), x.dtype.type(2.0), x.dtype.type(0.5)
    total = x.dtype.type(0.0)
    for d in range(x.shape[0]):
        u = (x[d] - mu[d]) / sigma[d]
        total += log_2pi + two * np.log(sigma[d]) + u * u
    return -half * total


@kernel
def _gaussian_terms_kernel(x, mu, sigma, terms):
    """terms = 2 log sigma + u^2 element by element, u = (x - mu) / sigma; arrays (N, D), taken as one pass
    over all N*D entries (a row of D = 2 or 3 values is too short to vectorise on its own)."""
    two, n = x.dtype.type(2.0), x.size
    xf, mf, sf, tf = x.reshape(n), mu.reshape(n), sigma.reshape(n), terms.reshape(n)
    for i in range(n):
        u = (xf[i] - mf[i]) / sf[i]
        tf[i] = two * vecmath.log(sf[i]) + u * u


@kernel
def _gaussian_backward_kernel(dlogp, x, mu, sigma, dx, dsigma):
    """gaussian_logpdf_backward for same-shape (N, D) arrays, the NumPy branch's lines fused per element:
    du = -g u, dx = du / sigma, dsigma = -g / sigma - du u / sigma (g = dlogp[n]; dmu = -dx); one pass over
    all N*D entries, with g first set beside every entry of its row."""
    (N, D), n = x.shape, x.size
    xf, mf, sf, dxf, dsf = x.reshape(n), mu.reshape(n), sigma.reshape(n), dx.reshape(n), dsigma.reshape(n)
    g = np.empty(n, x.dtype)
    for r in range(N):
        for d in range(D):
            g[r * D + d] = dlogp[r]
    for i in range(n):
        u = (xf[i] - mf[i]) / sf[i]
        du = -g[i] * u
        dxf[i] = du / sf[i]
        dsf[i] = -g[i] / sf[i] - du * u / sf[i]
