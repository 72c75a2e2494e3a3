"""Generation from the model (eqs. 4-6): draw z_t from the prior, x_t from the decoder, update the state.

Unlike training, everything here is inside the time loop: the generated x_t feeds phi_x at the next step.
All randomness is drawn up front (``draw_noise``), so ``sample_with_noise`` is a deterministic function that
another implementation can reproduce exactly from the same noise.
"""
from functools import partial

import numpy as np

from . import readable
from .fast import engine as compiled
from .fast import heads as compiled_heads
from .fast import linear as compiled_linear
from .model import get_engine, initial_state
from .ops import heads, linear
from .params import sub


def draw_noise(config, n_steps, n_sequences, rng, dtype=np.float64):
    """Every random number a generation of (T, B) needs: ``z`` (T, B, Z) standard normals for eq. (4)'s
    draw, and the decoder's ``normal`` (T, B, D or 2), ``u_component`` and ``u_pen`` (T, B) uniforms."""
    shape = (n_steps, n_sequences)
    noise = {"z": rng.standard_normal(shape + (config.z_dim,)).astype(dtype)}
    noise.update(heads.output_noise(config.output_kind, shape, config.x_dim, rng, dtype))
    return noise


def sample(params, config, n_steps, n_sequences, rng, *, state0=None, engine="compiled"):
    """Generate ``n_sequences`` sequences of ``n_steps`` frames: returns x of shape (T, B, D)."""
    dtype = params["phi_x.l0.W"].dtype
    noise = draw_noise(config, n_steps, n_sequences, rng, dtype)
    return sample_with_noise(params, config, noise, state0=state0, engine=engine)


def sample_with_noise(params, config, noise, *, state0=None, engine="compiled"):
    """Generation with the given noise (see ``draw_noise``); returns x (T, B, D). ``engine`` as in model.py:
    "readable" runs the components of minivrnn/ops/, "compiled" their compiled twins (the same numbers).

    VRNN, per step: z_t ~ p(z_t | h_{t-1}) (eq. 4), x_t ~ p(x_t | z_t, h_{t-1}) (eq. 5), h_t (eq. 6).
    RNN baselines: x_t ~ p(x_t | h_{t-1}) (eq. 2), h_t = f(phi_x(x_t), h_{t-1}) (eq. 1).
    """
    get_engine(engine)  # an unknown engine is an error before anything runs
    if engine == "readable":
        out_heads, mlp_forward = heads, linear.mlp_forward
        prior_forward, cell_forward = readable.prior_forward, readable.cell_forward
    else:
        out_heads, mlp_forward, prior_forward = compiled_heads, compiled_linear.mlp_forward, compiled.prior_forward
        # the gates side by side (gru.pack), packed once for every step
        cell_forward = partial(compiled.cell_forward, packed=compiled.packed_cell(params, config))
    dtype = params["phi_x.l0.W"].dtype
    n_steps, n_sequences = noise["u_pen"].shape
    state = initial_state(config, n_sequences, dtype) if state0 is None else tuple(state0)
    xs = np.empty((n_steps, n_sequences, config.x_dim), dtype=dtype)  # (T, B, D)
    for t in range(n_steps):
        h = state[0]  # h_{t-1} (B, H)
        if config.latent:
            (mu0, sigma0), _ = prior_forward(params, config, h)  # (B, Z)
            z = mu0 + sigma0 * noise["z"][t]  # eq. (4)
            pz, _ = mlp_forward(sub(params, "phi_z."), z)
            dec_in = np.concatenate([pz, h], axis=1)
        else:
            dec_in = h
        hd, _ = mlp_forward(sub(params, "dec."), dec_in)
        out, _ = out_heads.output_params_forward(params, config.output_kind, hd, config.x_dim, config.n_mix,
                                                 config.sigma_min)
        step_noise = {k: noise[k][t] for k in ("normal", "u_component", "u_pen")}
        xs[t] = out_heads.output_sample(out, config.output_kind, step_noise)  # eq. (5)
        px, _ = mlp_forward(sub(params, "phi_x."), xs[t])
        cell_in = np.concatenate([px, pz], axis=1) if config.latent else px
        state, _ = cell_forward(params, config, cell_in, state)  # eq. (6)
    return xs
