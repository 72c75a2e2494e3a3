"""Generation from the model (eqs. 4-6): draw z_t from the prior, x_t from the decoder, update the state.

Unlike training, everything here is inside the time loop: the generated x_t feeds phi_x at the next step.
"""
import numpy as np

from . import heads
from .model import _cell_forward, _prior_forward, initial_state
from .ops.linear import mlp_forward
from .params import sub


def sample(params, config, n_steps, n_sequences, rng, *, state0=None):
    """Generate ``n_sequences`` sequences of ``n_steps`` frames: returns x of shape (T, B, D).

    VRNN, per step: z_t ~ p(z_t | h_{t-1}) (eq. 4), x_t ~ p(x_t | z_t, h_{t-1}) (eq. 5), h_t (eq. 6).
    RNN baselines: x_t ~ p(x_t | h_{t-1}) (eq. 2), h_t = f(phi_x(x_t), h_{t-1}) (eq. 1).
    """
    dtype = params["phi_x.l0.W"].dtype
    state = initial_state(config, n_sequences, dtype) if state0 is None else tuple(state0)
    xs = np.empty((n_steps, n_sequences, config.x_dim), dtype=dtype)
    for t in range(n_steps):
        h = state[0]
        if config.latent:
            _, mu0, sigma0 = _prior_forward(params, config, h[None])  # (1, B, Z)
            z = mu0[0] + sigma0[0] * rng.standard_normal(mu0[0].shape).astype(dtype)
            pz, _ = mlp_forward(sub(params, "phi_z."), z)
            dec_in = np.concatenate([pz, h], axis=1)
        else:
            dec_in = h
        hd, _ = mlp_forward(sub(params, "dec."), dec_in)
        out, _ = heads.output_params_forward(params, config.output_kind, hd, config.x_dim, config.n_mix,
                                             config.sigma_min)
        xs[t] = heads.output_sample(out, config.output_kind, rng)
        px, _ = mlp_forward(sub(params, "phi_x."), xs[t])
        cell_in = np.concatenate([px, pz], axis=1) if config.latent else px
        state, _ = _cell_forward(params, config, cell_in, state)
    return xs
