"""Solutions to lesson 5's exercise and bug hunts. Try them first: lessons/exercises/lesson05.py's checkers
say what is wrong and where."""
from minivrnn.ops import heads
from minivrnn.ops.kl import kl_gaussian_backward
from minivrnn.ops.linear import mlp_backward
from minivrnn.ops.reparam import reparam_backward
from minivrnn.params import add_prefixed
from minivrnn.readable import cell_backward, masked_state_backward, prior_backward


def gru_step_backward(dh_new, cache):
    """Backward of gru_step_forward: the forward's lines in reverse, one line each."""
    p, x, h, r, u, s_n, n = (cache[k] for k in ("p", "x", "h", "r", "u", "s_n", "n"))
    g = {}
    # h_new = (1 - u) * n + u * h
    dn = dh_new * (1 - u)
    du = dh_new * (h - n)
    dh = dh_new * u  # the direct path; the gates add theirs below
    # n = tanh(x W_in + b_in + r * s_n)
    da_n = dn * (1 - n**2)
    dx = da_n @ p["W_in"].T
    g["W_in"], g["b_in"] = x.T @ da_n, da_n.sum(axis=0)
    dr = da_n * s_n
    ds_n = da_n * r
    # s_n = h W_hn + b_hn
    dh += ds_n @ p["W_hn"].T
    g["W_hn"], g["b_hn"] = h.T @ ds_n, ds_n.sum(axis=0)
    # u = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    da_u = du * u * (1 - u)
    dx += da_u @ p["W_iz"].T
    dh += da_u @ p["W_hz"].T
    g["W_iz"], g["b_iz"] = x.T @ da_u, da_u.sum(axis=0)
    g["W_hz"], g["b_hz"] = h.T @ da_u, da_u.sum(axis=0)
    # r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    da_r = dr * r * (1 - r)
    dx += da_r @ p["W_ir"].T
    dh += da_r @ p["W_hr"].T
    g["W_ir"], g["b_ir"] = x.T @ da_r, da_r.sum(axis=0)
    g["W_hr"], g["b_hr"] = h.T @ da_r, da_r.sum(axis=0)
    return dx, dh, g


def kl_backward(dkl, mu_q, sigma_q, mu_p, sigma_p):
    """The fixed copy: d/dsigma_p of (sigma_q^2 + delta^2) * (1/2) sigma_p^-2 is (sigma_q^2 + delta^2) * (1/2)
    * (-2) sigma_p^-3 = -(sigma_q^2 + delta^2) / sigma_p^3; the copy had kept the 1/2 (divided by 2 sigma_p^3)."""
    g = dkl[..., None]
    delta = mu_q - mu_p
    return {"mu_q": g * delta / sigma_p**2,
            "sigma_q": g * (-1 / sigma_q + sigma_q / sigma_p**2),
            "mu_p": -g * delta / sigma_p**2,
            "sigma_p": g * (1 / sigma_p - (sigma_q**2 + delta**2) / sigma_p**3)}


def vrnn_step_backward(dnll, dkl, dstate, cache):
    """The fixed copy: the KL term's gradient is multiplied by the mask, as the forward pass multiplied the
    KL by it (kl_t = KL * m); the copy passed ``dkl`` on padded steps too."""
    c, grads = cache, {}
    F, m = c["F"], c["mask"]
    dnew, dkeep = masked_state_backward(dstate, m)
    dcell_in, dprev, g = cell_backward(dnew, c["cell"])
    add_prefixed(grads, "", g)
    dpx, dpz = dcell_in[:, :F], dcell_in[:, F:]
    dq_mu, dq_sigma, dp_mu, dp_sigma = kl_gaussian_backward(dkl * m, c["kl"])  # was kl_gaussian_backward(dkl, ...)
    ddist = heads.output_logpdf_backward(-dnll * m, c["kind"], c["logp"])
    dhd, g = heads.output_params_backward(ddist, c["dec_heads"])
    add_prefixed(grads, "", g)
    ddec_in, g = mlp_backward(dhd, c["dec"])
    add_prefixed(grads, "dec.", g)
    dpz = dpz + ddec_in[:, :F]
    dh = ddec_in[:, F:]
    dz, g = mlp_backward(dpz, c["phi_z"])
    add_prefixed(grads, "phi_z.", g)
    dmu_z, dsigma_z, _ = reparam_backward(dz, c["z"])
    dhe, g = heads.gaussian_head_backward(dmu_z + dq_mu, dsigma_z + dq_sigma, c["enc_heads"])
    add_prefixed(grads, "", g)
    denc_in, g = mlp_backward(dhe, c["enc"])
    add_prefixed(grads, "enc.", g)
    dpx = dpx + denc_in[:, :F]
    dh = dh + denc_in[:, F:]
    dh_prior, g = prior_backward(dp_mu, dp_sigma, c["prior"])
    add_prefixed(grads, "", g)
    dh = dh + dh_prior
    _, g = mlp_backward(dpx, c["phi_x"], input_grad=False)
    add_prefixed(grads, "phi_x.", g)
    dh_prev = dh + dprev[0] + dkeep[0]
    return (dh_prev,) + tuple(a + b for a, b in zip(dprev[1:], dkeep[1:])), grads

