"""Distribution heads: linear layers from a feature vector to a distribution's parameters (the prior eq. (4),
the encoder eq. (8), the decoder eq. (5)), and the decoder's output log-likelihood (eq. (2) for the RNN
baselines, eq. (5) for the VRNN).

A standard deviation is always ``softplus(a) + sigma_min`` (docs/equations.md, "Closed forms"). Output
kinds: ``"gauss"`` (diagonal Gaussian), ``"gmm"`` (K-component mixture, heads laid out (K, D) row-major),
``"pen"`` (bivariate mixture with correlation for (dx, dy) plus a Bernoulli pen-up bit, "Pen-stroke
output"). Every head is its own linear layer on the same features.
"""
import numpy as np

from ..validate import check_like
from .activations import sigmoid_forward, softplus_backward, softplus_forward, tanh_backward, tanh_forward
from .gaussian import gaussian_logpdf_backward, gaussian_logpdf_forward
from .gmm import gmm_logpdf_backward, gmm_logpdf_forward
from .linear import init_linear, linear_backward, linear_forward
from .pen import (
    bernoulli_logpmf_backward,
    bernoulli_logpmf_forward,
    bivariate_gmm_logpdf_backward,
    bivariate_gmm_logpdf_forward,
)

# The correlation is rho = tanh(a) with a clipped to [-RHO_CLIP, RHO_CLIP]: beyond ~9, tanh rounds to exactly
# +-1 in float32, where N2's log-density is undefined. tanh(8) = 1 - 2.3e-7 is still below 1 in float32.
RHO_CLIP = 8.0

# The output heads of each decoder kind, with their widths as a function of (D, K).
OUTPUT_HEADS = {
    "gauss": {"mu": lambda D, K: D, "sigma": lambda D, K: D},
    "gmm": {"logits": lambda D, K: K, "mu": lambda D, K: K * D, "sigma": lambda D, K: K * D},
    "pen": {
        "logits": lambda D, K: K,
        "mu": lambda D, K: 2 * K,
        "sigma": lambda D, K: 2 * K,
        "rho": lambda D, K: K,
        "pen": lambda D, K: 1,
    },
}


def init_heads(rng, name, n_in, widths, dtype):
    """Linear heads ``{name}.{head}.W`` and ``.b`` for each ``head: width`` of ``widths``."""
    params = {}
    for head, width in widths.items():
        for key, value in init_linear(rng, n_in, width, dtype).items():
            params[f"{name}.{head}.{key}"] = value
    return params


def sigma_forward(a, sigma_min):
    """sigma = softplus(a) + sigma_min ("Closed forms"): a standard deviation that never falls below the floor."""
    return softplus_forward(a, sigma_min)


def sigma_backward(dsigma, cache):
    """Backward of sigma_forward: the floor is a constant, so this is softplus' backward."""
    return softplus_backward(dsigma, cache)


def _head(params, name, head):
    """The linear layer ``{name}.{head}`` as {"W", "b"}."""
    return {"W": params[f"{name}.{head}.W"], "b": params[f"{name}.{head}.b"]}


def gaussian_head_forward(params, name, features, sigma_min):
    """(mu, sigma) of a diagonal Gaussian from ``features`` by the heads ``name.mu`` and ``name.sigma``: the
    prior, eq. (4), or the encoder, eq. (8). Returns ((mu, sigma), cache)."""
    mu, mu_cache = linear_forward(_head(params, name, "mu"), features)  # (..., Z)
    a, a_cache = linear_forward(_head(params, name, "sigma"), features)  # (..., Z)
    sigma, sigma_cache = sigma_forward(a, sigma_min)
    return (mu, sigma), (name, mu_cache, a_cache, sigma_cache)


def gaussian_head_backward(dmu, dsigma, cache):
    """Backward of gaussian_head_forward: returns (dfeatures, grads) with grads keyed by full parameter names."""
    name, mu_cache, a_cache, sigma_cache = cache
    slope = sigma_cache  # (..., Z), the shape and dtype of mu and sigma
    check_like("dmu", dmu, slope.shape, slope.dtype, "... Z")
    check_like("dsigma", dsigma, slope.shape, slope.dtype, "... Z")
    da = sigma_backward(dsigma, sigma_cache)
    dfeatures_sigma, g_sigma = linear_backward(da, a_cache)
    dfeatures_mu, g_mu = linear_backward(dmu, mu_cache)
    grads = {f"{name}.mu.W": g_mu["W"], f"{name}.mu.b": g_mu["b"],
             f"{name}.sigma.W": g_sigma["W"], f"{name}.sigma.b": g_sigma["b"]}
    return dfeatures_mu + dfeatures_sigma, grads  # both heads read the same features


def output_params_forward(params, kind, features, x_dim, n_mix, sigma_min):
    """The decoder's distribution parameters from its features (N, F), eq. (5); a dict of arrays:
    mu, sigma (N, D), or (N, K, D) for "gmm", (N, K, 2) for "pen"; logits (N, K); rho (N, K); pen (N,)."""
    N = features.shape[0]
    raw, caches = {}, {"heads": {}}
    for head in OUTPUT_HEADS[kind]:  # every head its own linear layer on the same features
        raw[head], caches["heads"][head] = linear_forward(_head(params, "dec", head), features)
    out = {"mu": raw["mu"]}
    out["sigma"], caches["sigma_act"] = sigma_forward(raw["sigma"], sigma_min)
    if kind == "gmm":
        out["logits"] = raw["logits"]  # (N, K)
        out["mu"] = out["mu"].reshape(N, n_mix, x_dim)  # (N, K, D)
        out["sigma"] = out["sigma"].reshape(N, n_mix, x_dim)
    elif kind == "pen":
        out["logits"] = raw["logits"]  # (N, K)
        out["mu"] = out["mu"].reshape(N, n_mix, 2)  # (N, K, 2)
        out["sigma"] = out["sigma"].reshape(N, n_mix, 2)
        caches["rho_inside"] = np.abs(raw["rho"]) < RHO_CLIP  # where the clip lets the gradient through
        out["rho"], caches["rho_act"] = tanh_forward(np.clip(raw["rho"], -RHO_CLIP, RHO_CLIP))  # (N, K) in (-1, 1)
        out["pen"] = raw["pen"][:, 0]  # (N,) Bernoulli logit of the pen-up bit
    return out, (caches, kind, N)


def output_params_backward(dout, cache):
    """Backward of output_params_forward: (dfeatures, grads keyed by full parameter names)."""
    caches, kind, N = cache
    draw = {"mu": dout["mu"].reshape(N, -1)}  # (N, K*D) as the head wrote it
    draw["sigma"] = sigma_backward(dout["sigma"].reshape(N, -1), caches["sigma_act"])
    if kind in ("gmm", "pen"):
        draw["logits"] = dout["logits"]
    if kind == "pen":
        draw["rho"] = tanh_backward(dout["rho"], caches["rho_act"]) * caches["rho_inside"]  # 0 where clipped
        draw["pen"] = dout["pen"][:, None]  # (N, 1)
    dfeatures, grads = 0, {}
    for head in OUTPUT_HEADS[kind]:
        dfeatures_head, g = linear_backward(draw[head], caches["heads"][head])
        dfeatures = dfeatures + dfeatures_head  # every head read the same features
        grads[f"dec.{head}.W"], grads[f"dec.{head}.b"] = g["W"], g["b"]
    return dfeatures, grads


def output_logpdf_forward(out, kind, x):
    """log p(x_t | ...) per row for the decoder's distribution ``out``, eq. (5); x is (N, D), result (N,)."""
    if kind == "gauss":
        return gaussian_logpdf_forward(x, out["mu"], out["sigma"])
    if kind == "gmm":
        return gmm_logpdf_forward(x, out["logits"], out["mu"], out["sigma"])
    xy, e = np.ascontiguousarray(x[:, :2]), np.ascontiguousarray(x[:, 2])  # (N, 2) offsets, (N,) pen bit
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


def output_noise(kind, shape, x_dim, rng, dtype):
    """The random numbers ``output_sample`` needs for rows of ``shape``, drawn from ``rng``."""
    n_normal = x_dim if kind != "pen" else 2
    return {"normal": rng.standard_normal(shape + (n_normal,)).astype(dtype),  # the Gaussian draw
            "u_component": rng.random(shape),  # picks the mixture component (gmm, pen)
            "u_pen": rng.random(shape)}  # decides the pen-up bit (pen)


def output_sample(out, kind, noise):
    """One x per row from the decoder's distribution (generation, eq. (5)), given ``output_noise``'s draws."""
    normal = noise["normal"]  # (N, D) or (N, 2)
    if kind == "gauss":
        return out["mu"] + out["sigma"] * normal
    k = _pick_component(out["logits"], noise["u_component"])  # (N,)
    rows = np.arange(k.size)
    mu, sigma = out["mu"][rows, k], out["sigma"][rows, k]  # (N, D) or (N, 2)
    if kind == "gmm":
        return mu + sigma * normal
    rho = out["rho"][rows, k]
    # Correlated pair: dy's noise mixes dx's noise with an independent draw (Cholesky of the 2x2 covariance).
    dx = mu[:, 0] + sigma[:, 0] * normal[:, 0]
    dy = mu[:, 1] + sigma[:, 1] * (rho * normal[:, 0] + np.sqrt(1 - rho * rho) * normal[:, 1])
    pen_up = noise["u_pen"] < sigmoid_forward(out["pen"])[0]
    return np.stack([dx, dy, pen_up.astype(mu.dtype)], axis=1)


def _pick_component(logits, u):
    """The first k whose cumulative softmax weight exceeds u (inverse-CDF sampling); u in [0, 1)."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((u[:, None] >= cumulative).sum(axis=1), logits.shape[1] - 1)
