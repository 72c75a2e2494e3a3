"""Solution to lesson 3's bug hunt (try it first: ``lessons/exercises/lesson03.py`` checks your fix).

The bug: the prior's line read ``h``, the state *after* eq. (6) — h_t, which has already seen z_t and x_t. The
prior of step t is p(z_t | x_<t, z_<t) (eq. (7)): it reads h_{t-1}, like the decoder. One word changes:
``mlp_forward(sub(params, "prior."), h)`` becomes ``mlp_forward(sub(params, "prior."), h_prev)``.
Computing the state last, as below (and as ``minivrnn/readable.py`` does), makes the order of eqs. (4)-(6) the
order of the lines, so that a later line cannot hand an earlier equation the new state.
"""
import numpy as np

from minivrnn.ops.heads import gaussian_head_forward, output_params_forward
from minivrnn.ops.linear import mlp_forward
from minivrnn.params import sub
from minivrnn.readable import cell_forward


def generative_step(params, config, h_prev, z_t, x_t):
    """One step of the generative model for a given latent z_t (B, Z) and frame x_t (B, D), from the state
    h_prev = h_{t-1} (B, H). Returns the prior (mu_0, sigma_0) of eq. (4), the decoder's (mu_x, sigma_x) of
    eq. (5) and the new state h_t of eq. (6)."""
    hp, _ = mlp_forward(sub(params, "prior."), h_prev)                                  # eq. (4): h_{t-1}
    prior, _ = gaussian_head_forward(params, "prior", hp, config.sigma_min)
    pz, _ = mlp_forward(sub(params, "phi_z."), z_t)                                      # phi_z(z_t)
    hd, _ = mlp_forward(sub(params, "dec."), np.concatenate([pz, h_prev], axis=1))      # eq. (5): h_{t-1}
    dec, _ = output_params_forward(params, "gauss", hd, config.x_dim, 1, config.sigma_min)
    px, _ = mlp_forward(sub(params, "phi_x."), x_t)                                      # phi_x(x_t)
    (h_t,), _ = cell_forward(params, config, np.concatenate([px, pz], axis=1), (h_prev,))  # eq. (6), last
    return prior, (dec["mu"], dec["sigma"]), h_t
