"""The compiled twin of ops/heads.py: distribution heads from a feature vector to a distribution's
parameters, and the decoder's output log-likelihood (eq. (2) for the RNN baselines, eq. (5) for the VRNN).

The heads that read the same features run as one linear layer with their weights side by side (one matrix
product instead of one per head). The parameter layout, initialisation and sampling are ops/heads.py's.
"""
import numpy as np

from ..ops.heads import OUTPUT_HEADS, RHO_CLIP, init_heads, output_noise, output_sample  # noqa: F401  (shared)
from ..validate import check_like
from .activations import (
    join_scaled_kernel,
    softplus_backward,
    softplus_forward,
    split_softplus_kernel,
    tanh_backward,
    tanh_forward,
)
from .gaussian import gaussian_logpdf_backward, gaussian_logpdf_forward
from .gmm import gmm_logpdf_backward, gmm_logpdf_forward
from .linear import linear_backward, linear_forward
from .pen import (
    bernoulli_logpmf_backward,
    bernoulli_logpmf_forward,
    bivariate_gmm_logpdf_backward,
    bivariate_gmm_logpdf_forward,
)


def sigma_forward(a, sigma_min):
    """sigma = softplus(a) + sigma_min: a standard deviation that never falls below the floor."""
    return softplus_forward(a, sigma_min)


def sigma_backward(dsigma, cache):
    """Backward of sigma_forward: the floor is a constant, so this is softplus' backward."""
    return softplus_backward(dsigma, cache)


def gaussian_head_forward(params, name, features, sigma_min):
    """[mu, sigma] = heads of ``name`` on ``features`` (the prior eq. 4, the encoder eq. 8). The two heads
    read the same features, so they run as one linear layer with their weights side by side, [W_mu | W_sig]."""
    a, cache = _side_by_side_linear(params, name, ("mu", "sigma"), features)  # [a_mu | a_sig]: one product
    mu, sigma, slope = _gaussian_params(a, sigma_min)
    return (mu, sigma), (cache, slope)


def gaussian_head_backward(dmu, dsigma, cache):
    """Returns (dfeatures, grads) with grads keyed by full parameter names."""
    cache, slope = cache
    return _side_by_side_linear_backward(_gaussian_params_backward(dmu, dsigma, slope), cache)


def _gaussian_params(a, sigma_min):
    """[a_mu | a_sig] (..., 2Z) -> mu = a_mu, sigma = softplus(a_sig) + sigma_min (sigma_forward) and the slope
    for backward, each (..., Z), in one compiled pass (cutting the heads apart first cost two more copies)."""
    Z = a.shape[-1] // 2
    rows = np.ascontiguousarray(a).reshape(-1, 2 * Z)
    mu, sigma, slope = (np.empty(a.shape[:-1] + (Z,), a.dtype) for _ in range(3))
    split_softplus_kernel(rows, a.dtype.type(sigma_min), mu.reshape(-1, Z), sigma.reshape(-1, Z),
                           slope.reshape(-1, Z))
    return mu, sigma, slope


def _gaussian_params_backward(dmu, dsigma, slope):
    """The gradient reaching [a_mu | a_sig] in _gaussian_params: [dmu | dsigma * slope] (..., 2Z)."""
    check_like("dmu", dmu, slope.shape, slope.dtype, "... Z")
    check_like("dsigma", dsigma, slope.shape, slope.dtype, "... Z")
    Z = slope.shape[-1]
    da = np.empty(slope.shape[:-1] + (2 * Z,), slope.dtype)
    join_scaled_kernel(np.ascontiguousarray(dmu).reshape(-1, Z), np.ascontiguousarray(dsigma).reshape(-1, Z),
                        slope.reshape(-1, Z), da.reshape(-1, 2 * Z))
    return da


def output_params_forward(params, kind, features, x_dim, n_mix, sigma_min):
    """The decoder's distribution parameters from its features (N, F); a dict of arrays. The heads read the
    same features, so they run as one linear layer with their weights side by side."""
    N = features.shape[0]
    if kind == "gauss":  # [mu | sigma]: cut and activated in one pass
        a, heads_cache = _side_by_side_linear(params, "dec", ("mu", "sigma"), features)  # one product
        mu, sigma, slope = _gaussian_params(a, sigma_min)
        return {"mu": mu, "sigma": sigma}, ({"heads": heads_cache, "sigma_act": slope}, kind, N)
    raw, heads_cache = _side_by_side_forward(params, "dec", OUTPUT_HEADS[kind], features)  # one product
    caches = {"heads": heads_cache}
    out = {"mu": raw["mu"]}
    out["sigma"], caches["sigma_act"] = sigma_forward(raw["sigma"], sigma_min)
    if kind == "gmm":
        out["logits"] = raw["logits"]
        out["mu"] = out["mu"].reshape(N, n_mix, x_dim)  # (N, K, D)
        out["sigma"] = out["sigma"].reshape(N, n_mix, x_dim)
    elif kind == "pen":
        out["logits"] = raw["logits"]
        out["mu"] = out["mu"].reshape(N, n_mix, 2)  # (N, K, 2)
        out["sigma"] = out["sigma"].reshape(N, n_mix, 2)
        inside = np.abs(raw["rho"]) < RHO_CLIP
        out["rho"], caches["rho_act"] = tanh_forward(np.clip(raw["rho"], -RHO_CLIP, RHO_CLIP))  # in (-1, 1)
        caches["rho_inside"] = inside
        out["pen"] = raw["pen"][:, 0]  # (N,) Bernoulli logit of the pen-up bit
    return out, (caches, kind, N)


def output_params_backward(dout, cache):
    """Backward of output_params_forward: (dfeatures, grads)."""
    caches, kind, N = cache
    if kind == "gauss":
        da = _gaussian_params_backward(dout["mu"], dout["sigma"], caches["sigma_act"])
        return _side_by_side_linear_backward(da, caches["heads"])
    draw = {"mu": dout["mu"].reshape(N, -1)}
    draw["sigma"] = sigma_backward(dout["sigma"].reshape(N, -1), caches["sigma_act"])
    if kind in ("gmm", "pen"):
        draw["logits"] = dout["logits"]
    if kind == "pen":
        draw["rho"] = tanh_backward(dout["rho"], caches["rho_act"]) * caches["rho_inside"]  # 0 where clipped
        draw["pen"] = dout["pen"][:, None]
    return _side_by_side_backward(draw, caches["heads"])


def _side_by_side_forward(params, name, heads, features):
    """Every head ``{name}.{head}`` on the same features as one linear layer, the weights side by side, then
    cut back into the heads: ({head: (..., width)}, cache)."""
    a, cache = _side_by_side_linear(params, name, heads, features)
    cuts = cache[-1]
    return {head: np.ascontiguousarray(a[..., i:j]) for head, (i, j) in zip(heads, cuts)}, cache


def _side_by_side_backward(draw, cache):
    """Backward of _side_by_side_forward: (dfeatures, grads keyed by full parameter names)."""
    _, _, heads, _ = cache
    return _side_by_side_linear_backward(np.concatenate([draw[head] for head in heads], axis=-1), cache)


def _side_by_side_linear(params, name, heads, features):
    """The heads' linear layers as one, [W_1 | W_2 | ...]: (a (..., sum of widths), cache)."""
    Ws = [params[f"{name}.{head}.W"] for head in heads]
    W = np.concatenate(Ws, axis=1)  # (F, sum of widths)
    b = np.concatenate([params[f"{name}.{head}.b"] for head in heads])
    a, linear_cache = linear_forward({"W": W, "b": b}, features)
    cuts, start = [], 0  # (start, end) of each head's columns
    for w in Ws:
        cuts.append((start, start + w.shape[1]))
        start += w.shape[1]
    return a, (linear_cache, name, heads, cuts)


def _side_by_side_linear_backward(da, cache):
    """Backward of _side_by_side_linear given d a: (dfeatures, grads keyed by full parameter names)."""
    linear_cache, name, heads, cuts = cache
    dfeatures, g = linear_backward(da, linear_cache)
    grads = {}
    for head, (i, j) in zip(heads, cuts):
        grads[f"{name}.{head}.W"], grads[f"{name}.{head}.b"] = np.ascontiguousarray(g["W"][:, i:j]), g["b"][i:j]
    return dfeatures, grads


def output_logpdf_forward(out, kind, x):
    """log p(x_t | ...) per row for the decoder's distribution ``out``; x is (N, D), result (N,)."""
    if kind == "gauss":
        return gaussian_logpdf_forward(x, out["mu"], out["sigma"])
    if kind == "gmm":
        return gmm_logpdf_forward(x, out["logits"], out["mu"], out["sigma"])
    xy, e = np.ascontiguousarray(x[:, :2]), np.ascontiguousarray(x[:, 2])
    logp_xy, xy_cache = bivariate_gmm_logpdf_forward(xy, out["logits"], out["mu"], out["sigma"], out["rho"])
    logp_e, e_cache = bernoulli_logpmf_forward(e, out["pen"])
    return logp_xy + logp_e, (xy_cache, e_cache)


def output_logpdf_backward(dlogp, kind, cache):
    """Gradients of the log-likelihood with respect to the distribution parameters (a dict)."""
    if kind == "gauss":
        _, dmu, dsigma = gaussian_logpdf_backward(dlogp, cache)
        return {"mu": dmu, "sigma": dsigma}
    if kind == "gmm":
        _, dlogits, dmu, dsigma = gmm_logpdf_backward(dlogp, cache)
        return {"logits": dlogits, "mu": dmu, "sigma": dsigma}
    xy_cache, e_cache = cache
    _, dlogits, dmu, dsigma, drho = bivariate_gmm_logpdf_backward(dlogp, xy_cache)
    dpen = bernoulli_logpmf_backward(dlogp, e_cache)
    return {"logits": dlogits, "mu": dmu, "sigma": dsigma, "rho": drho, "pen": dpen}
