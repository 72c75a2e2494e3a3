"""The reparameterisation trick: z = mu + sigma * eps with eps ~ N(0, I) ("Closed forms"; samples eq. (8)).

The noise eps is an argument, drawn by the caller, so z is a deterministic, differentiable function of
(mu, sigma): dz/dmu = 1, dz/dsigma = eps.
"""
from ..validate import check_arrays, check_like


def reparam_forward(mu, sigma, eps):
    """z = mu + sigma * eps for arrays of shape (..., Z); returns (z, cache)."""
    check_arrays(mu=(mu, "... Z"), sigma=(sigma, "... Z"), eps=(eps, "... Z"))
    z = mu + sigma * eps  # (..., Z)
    return z, (sigma, eps)


def reparam_backward(dz, cache):
    """Backward of reparam_forward: returns (dmu, dsigma, deps)."""
    sigma, eps = cache
    check_like("dz", dz, sigma.shape, sigma.dtype, "... Z")
    dmu = dz.copy()  # a copy, so a caller accumulating into dmu never changes dz
    dsigma = dz * eps
    deps = dz * sigma
    return dmu, dsigma, deps
