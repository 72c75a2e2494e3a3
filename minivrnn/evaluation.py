"""Evaluation: the ELBO (the paper's ">=" columns) and the importance-sampled log-likelihood ("~" columns).

With S posterior samples z^(s) ~ q(z_<=T | x_<=T), drawn sequentially (eq. 9),
    log p(x) ~ logsumexp_s [ log p(x, z^(s)) - log q(z^(s) | x) ] - log S,
where log p(x, z) = sum_t [ log p(x_t | z_<=t, x_<t) + log p(z_t | x_<t, z_<t) ] (eq. 7) and
log q(z | x) = sum_t log q(z_t | x_<=t, z_<t). It is >= the ELBO in expectation and tightens as S grows.
For the RNN baselines the log-likelihood (eq. 2) is exact and both columns are equal.
"""
import numpy as np

from .model import forward
from .fast.activations import logsumexp_forward
from .fast.gaussian import gaussian_logpdf_forward


def log_weight(result, eps, mask):
    """log p(x, z) - log q(z | x) per sequence, (B,), from a ``forward`` result whose posterior sample was
    z = mu_q + sigma_q * eps. For the RNN baselines (no z) it is the exact log-likelihood log p(x)."""
    log_px_given_z = -result["nll"].sum(axis=0)  # (B,)
    if "q_mu" not in result:
        return log_px_given_z
    z = result["q_mu"] + result["q_sigma"] * eps  # (T, B, Z): the same z the forward pass used
    log_p = gaussian_logpdf_forward(z, result["p_mu"], result["p_sigma"])[0]  # (T, B) log p(z_t | ...)
    log_q = gaussian_logpdf_forward(z, result["q_mu"], result["q_sigma"])[0]  # (T, B) log q(z_t | ...)
    return log_px_given_z + ((log_p - log_q) * mask).sum(axis=0)


def elbo_and_importance(params, config, x, mask, n_samples, rng, *, engine="compiled"):
    """Per sequence: (ELBO averaged over the S samples, importance-sampled log p(x) with S samples), (B,) each.

    The ELBO uses the closed-form KL (eq. 10); each sample draws fresh eps for every step. ``engine`` as in
    model.py. `evaluate_terms` gives the same two with the ELBO's terms and the weights' effective sample size.
    """
    terms = evaluate_terms(params, config, x, mask, n_samples, rng, engine=engine)
    return terms["elbo"], terms["log_likelihood"]


def evaluate_terms(params, config, x, mask, n_samples, rng, *, engine="compiled"):
    """Per sequence, a dict of (B,) arrays:

    - ``elbo`` = ``rec`` - ``kl``, each averaged over the S samples: ``rec`` is the reconstruction term
      sum_t log p(x_t | z_<=t, x_<t), ``kl`` the closed-form KL summed over the steps (eq. 10);
    - ``log_likelihood``: the importance-sampled estimate with S samples (above); exact for the RNNs;
    - ``ess``: the effective sample size of the S normalised weights w_s, 1 / sum_s w_s^2, between 1 (one
      sample carries the estimate: it is unreliable) and S (all weigh the same). NaN for the RNNs.

    The samples are drawn in the same order as `elbo_and_importance` draws them, so both give the same values
    for the same ``rng``.
    """
    T, B = mask.shape
    if not config.latent:
        result = forward(params, config, x, mask, None, engine=engine)[0]
        exact = log_weight(result, None, mask)
        return {"elbo": exact, "rec": exact, "kl": np.zeros(B), "log_likelihood": exact,
                "ess": np.full(B, np.nan)}
    recs, kls, weights = [], [], []
    for _ in range(n_samples):
        eps = rng.standard_normal((T, B, config.z_dim)).astype(x.dtype)
        result, _ = forward(params, config, x, mask, eps, engine=engine)
        recs.append(-result["nll"].sum(axis=0))
        kls.append(result["kl"].sum(axis=0))
        weights.append(log_weight(result, eps, mask))
    log_w = np.stack(weights, axis=1).astype(np.float64)  # (B, S)
    log_norm = logsumexp_forward(log_w)[0]
    w = np.exp(log_w - log_norm[:, None])  # normalised weights: each row sums to 1
    rec, kl = np.mean(recs, axis=0), np.mean(kls, axis=0)
    return {"elbo": np.mean([r - k for r, k in zip(recs, kls)], axis=0), "rec": rec, "kl": kl,
            "log_likelihood": log_norm - np.log(n_samples), "ess": 1.0 / (w ** 2).sum(axis=1)}
