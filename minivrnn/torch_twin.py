"""A PyTorch twin of the model, for cross-checks and benchmarks (needs the "torch" extra).

Written the ordinary PyTorch way, independently of minivrnn's code: ``nn.Linear`` MLPs, ``nn.GRUCell`` /
``nn.LSTMCell`` for the recurrence (eqs. 1 and 6), ``torch.distributions`` for every density and the KL,
autograd for every gradient. It loads minivrnn's parameter dict (names and shapes of the README's public
contract) and computes the same loss: the negative ELBO (eq. 10), or the negative log-likelihood (eq. 2)
for the RNN baselines, summed over time and data dimensions and averaged over the B sequences.

Never imported by ``minivrnn/__init__``: ``from minivrnn import torch_twin``.
"""
import numpy as np
import torch
import torch.nn.functional as fn
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)

RHO_CLIP = 8.0  # the pen output's correlation is tanh(a) with a clipped to +-RHO_CLIP (minivrnn/ops/heads.py)
NO_CHECK = {"validate_args": False}  # padded steps hold junk (e.g. a pen bit of 7): let it through
GATES = {"gru": "rzn", "lstm": "ifgo"}  # PyTorch's gate order inside weight_ih / weight_hh


# --- the output densities (docs/equations.md, "Closed forms" and "Pen-stroke output") ----------------------

def diagonal_gaussian(mu, sigma):
    """N(mu, diag(sigma^2)) over the last axis (eqs. 2 and 5)."""
    return Independent(Normal(mu, sigma, **NO_CHECK), 1, **NO_CHECK)


def gaussian_mixture(logits, mu, sigma):
    """sum_k softmax(logits)_k N(mu_k, diag(sigma_k^2)); mu and sigma (..., K, D)."""
    return MixtureSameFamily(Categorical(logits=logits, **NO_CHECK), diagonal_gaussian(mu, sigma), **NO_CHECK)


def bivariate_mixture(logits, mu, sigma, rho):
    """sum_k pi_k N2(mu_k, sigma_k, rho_k), the pen offsets' density; mu and sigma (..., K, 2), rho (..., K).

    N2's covariance [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] has the Cholesky factor
    [[s1, 0], [rho s2, s2 sqrt(1 - rho^2)]].
    """
    s1, s2 = sigma.unbind(-1)
    zero = torch.zeros_like(s1)
    scale_tril = torch.stack([torch.stack([s1, zero], -1),
                              torch.stack([rho * s2, s2 * torch.sqrt((1 - rho) * (1 + rho))], -1)], -2)
    return MixtureSameFamily(Categorical(logits=logits, **NO_CHECK),
                             MultivariateNormal(mu, scale_tril=scale_tril, **NO_CHECK), **NO_CHECK)


class Pen:
    """p(x) = [bivariate mixture of (dx, dy)] * Bernoulli(pen_up; sigmoid(logit)), x = (dx, dy, pen_up)."""

    def __init__(self, logits, mu, sigma, rho, pen_logit):
        self.xy = bivariate_mixture(logits, mu, sigma, rho)
        self.pen_up = Bernoulli(logits=pen_logit, **NO_CHECK)

    def log_prob(self, x):
        return self.xy.log_prob(x[..., :2]) + self.pen_up.log_prob(x[..., 2])


def draw(dist, normal, u_component, u_pen):
    """One x per row of ``dist`` from explicit noise, as minivrnn.sampling does: a mixture component is the
    first k whose cumulative weight exceeds u_component; a Gaussian draw is loc + scale_tril @ normal; the
    pen is up when u_pen < sigmoid(logit)."""
    if isinstance(dist, Pen):
        xy = draw(dist.xy, normal, u_component, None)
        return torch.cat([xy, (u_pen < dist.pen_up.probs).to(xy.dtype)[..., None]], -1)
    if isinstance(dist, MixtureSameFamily):
        weights = dist.mixture_distribution.probs  # (N, K)
        k = torch.searchsorted(weights.cumsum(-1), u_component[:, None], right=True)[:, 0]
        k = k.clamp(max=weights.shape[-1] - 1)
        rows = torch.arange(k.shape[0])
        comp = dist.component_distribution
        if isinstance(comp, MultivariateNormal):
            return comp.loc[rows, k] + (comp.scale_tril[rows, k] @ normal[..., None])[..., 0]
        return comp.base_dist.loc[rows, k] + comp.base_dist.scale[rows, k] * normal
    return dist.base_dist.loc + dist.base_dist.scale * normal


# --- the model ------------------------------------------------------------------------------------------

def mlp(n_in, width, n_layers):
    """``n_layers`` of Linear then ReLU, every one ``width`` wide (a feature extractor phi)."""
    layers = []
    for _ in range(n_layers):
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    return nn.Sequential(*layers)


class TorchVRNN(nn.Module):
    """The VRNN (eqs. 4-10) or an RNN baseline (eqs. 1-2), configured by a ``minivrnn.VRNNConfig``."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        D, Z, H, F, K, L = c.x_dim, c.z_dim, c.h_dim, c.feat_dim, c.n_mix, c.n_layers
        self.phi_x = mlp(D, F, L)
        heads = {}
        if c.latent:
            self.phi_z = mlp(Z, F, L)
            if c.learned_prior:
                self.prior = mlp(H, F, L)
                heads["prior"] = {"mu": Z, "sigma": Z}
            self.enc = mlp(F + H, F, L)  # reads [phi_x(x_t), h_{t-1}]
            heads["enc"] = {"mu": Z, "sigma": Z}
            self.dec = mlp(F + H, F, L)  # reads [phi_z(z_t), h_{t-1}]
            cell_in = 2 * F  # reads [phi_x(x_t), phi_z(z_t)]
        else:
            self.dec = mlp(H, F, L)  # reads h_{t-1}
            cell_in = F  # reads phi_x(x_t)
        heads["dec"] = {"gauss": {"mu": D, "sigma": D},
                        "gmm": {"logits": K, "mu": K * D, "sigma": K * D},
                        "pen": {"logits": K, "mu": 2 * K, "sigma": 2 * K, "rho": K, "pen": 1}}[c.output_kind]
        self.heads = nn.ModuleDict({part: nn.ModuleDict({name: nn.Linear(F, width) for name, width in hs.items()})
                                    for part, hs in heads.items()})
        self.cell = (nn.GRUCell if c.cell == "gru" else nn.LSTMCell)(cell_in, H)

    # the pieces, one per equation

    def std(self, a):
        """sigma = softplus(a) + sigma_min. PyTorch's default softplus turns into the identity above 20,
        off by exp(-20) ~ 2e-9 there; a threshold of 40 keeps it exact in float64."""
        return fn.softplus(a, threshold=40.0) + self.config.sigma_min

    def gaussian(self, part, features):
        """Normal(mu, sigma) from the ``part`` heads ("prior", eq. 4, or "enc", eq. 8)."""
        heads = self.heads[part]
        return Normal(heads["mu"](features), self.std(heads["sigma"](features)), **NO_CHECK)

    def prior_of(self, h):
        """p(z_t | h_{t-1}) (eq. 4), or VRNN-I's N(0, I)."""
        if self.config.learned_prior:
            return self.gaussian("prior", self.prior(h))
        zeros = h.new_zeros(h.shape[:-1] + (self.config.z_dim,))
        return Normal(zeros, zeros + 1, **NO_CHECK)

    def output(self, features):
        """The decoder's distribution of x_t (eq. 5; eq. 2 for the baselines) from dec's features."""
        c = self.config
        a = {name: layer(features) for name, layer in self.heads["dec"].items()}
        sigma = self.std(a["sigma"])
        if c.output_kind == "gauss":
            return diagonal_gaussian(a["mu"], sigma)
        if c.output_kind == "gmm":  # heads laid out (K, D) row-major
            shape = (c.n_mix, c.x_dim)
            return gaussian_mixture(a["logits"], a["mu"].unflatten(-1, shape), sigma.unflatten(-1, shape))
        shape = (c.n_mix, 2)
        return Pen(a["logits"], a["mu"].unflatten(-1, shape), sigma.unflatten(-1, shape),
                   torch.tanh(torch.clamp(a["rho"], -RHO_CLIP, RHO_CLIP)), a["pen"][..., 0])

    def step(self, inputs, state):
        """The recurrence f (eqs. 1 and 6); the state is (h,) for the GRU, (h, c) for the LSTM."""
        if self.config.cell == "gru":
            return (self.cell(inputs, state[0]),)
        return self.cell(inputs, state)

    def initial_state(self, batch_size, like):
        return tuple(like.new_zeros(batch_size, self.config.h_dim) for _ in range(1 + (self.config.cell == "lstm")))

    # the loss and generation

    def forward(self, x, mask, eps=None, state0=None, kl_weight=1.0):
        """The loss of a padded batch: x (T, B, D), mask (T, B) of 0/1, eps (T, B, Z) (None for the baselines).

        Returns a dict: ``loss`` (scalar), the per-step ``nll`` and ``kl`` (T, B) (zero on padded steps)
        and the ``final_state``. A padded step contributes nothing and leaves the state where it was.
        """
        T, B, _ = x.shape
        state = self.initial_state(B, x) if state0 is None else tuple(state0)
        px = self.phi_x(x)  # (T, B, F), every frame at once
        h_prevs, pzs, q_mu, q_sigma = [], [], [], []
        for t in range(T):  # the sequential chain
            h = state[0]
            h_prevs.append(h)
            if self.config.latent:
                q = self.gaussian("enc", self.enc(torch.cat([px[t], h], -1)))  # eq. (8)
                z = q.loc + q.scale * eps[t]  # reparameterised with the given noise
                pzs.append(self.phi_z(z))
                q_mu.append(q.loc)
                q_sigma.append(q.scale)
                new = self.step(torch.cat([px[t], pzs[-1]], -1), state)  # eq. (6)
            else:
                new = self.step(px[t], state)  # eq. (1)
            keep = mask[t, :, None] > 0
            state = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
        h_prevs = torch.stack(h_prevs)  # (T, B, H)
        if self.config.latent:
            q = Normal(torch.stack(q_mu), torch.stack(q_sigma), **NO_CHECK)  # (T, B, Z)
            kl = kl_divergence(q, self.prior_of(h_prevs)).sum(-1)  # (T, B), eqs. (4) and (10)
            dec_in = torch.cat([torch.stack(pzs), h_prevs], -1)
        else:
            kl = torch.zeros_like(mask)
            dec_in = h_prevs
        log_px = self.output(self.dec(dec_in)).log_prob(x)  # (T, B), eqs. (5) and (2)
        nll, kl = -log_px * mask, kl * mask
        loss = (nll.sum() + kl_weight * kl.sum()) / B
        return {"loss": loss, "nll": nll, "kl": kl, "final_state": state}

    def loss(self, x, mask, eps=None, state0=None, kl_weight=1.0):
        """Same as calling the module: see ``forward``."""
        return self(x, mask, eps, state0, kl_weight)

    @torch.no_grad()
    def sample_with_noise(self, noise, state0=None):
        """Generation (eqs. 4-6; 1-2 for the baselines) from explicit noise, minivrnn.sampling's layout:
        ``z`` (T, B, Z), ``normal`` (T, B, D or 2), ``u_component`` and ``u_pen`` (T, B). Returns x (T, B, D)."""
        T, B = noise["u_pen"].shape
        state = self.initial_state(B, noise["normal"]) if state0 is None else tuple(state0)
        xs = []
        for t in range(T):
            h = state[0]
            if self.config.latent:
                p = self.prior_of(h)
                pz = self.phi_z(p.loc + p.scale * noise["z"][t])  # z_t ~ p(z_t | h_{t-1}), eq. (4)
                dec_in = torch.cat([pz, h], -1)
            else:
                dec_in = h
            xs.append(draw(self.output(self.dec(dec_in)), noise["normal"][t], noise["u_component"][t],
                           noise["u_pen"][t]))  # eq. (5)
            px = self.phi_x(xs[-1])
            state = self.step(torch.cat([px, pz], -1) if self.config.latent else px, state)  # eq. (6)
        return torch.stack(xs)

    # minivrnn's parameter names

    def named_views(self, grad=False):
        """minivrnn's name -> a view of the PyTorch parameter (or of its ``.grad``) in minivrnn's layout.

        nn.Linear stores W as (out, in), minivrnn as (in, out); a cell's weight_ih stacks the gates' W.T
        along its first axis in PyTorch's gate order (GRU r, z, n; LSTM i, f, g, o)."""
        def get(p):  # a parameter the loss never reached (the cell when T = 1) has no .grad: its gradient is 0
            return p.data if not grad else torch.zeros_like(p) if p.grad is None else p.grad
        views = {}
        for part in ("phi_x", "phi_z", "prior", "enc", "dec"):
            if hasattr(self, part):
                for i, layer in enumerate(getattr(self, part)[::2]):  # skip the ReLUs
                    views[f"{part}.l{i}.W"], views[f"{part}.l{i}.b"] = get(layer.weight).T, get(layer.bias)
        for part, heads in self.heads.items():
            for name, layer in heads.items():
                views[f"{part}.{name}.W"], views[f"{part}.{name}.b"] = get(layer.weight).T, get(layer.bias)
        c, H = self.config.cell, self.config.h_dim
        for j, gate in enumerate(GATES[c]):
            rows = slice(j * H, (j + 1) * H)
            views[f"{c}.W_i{gate}"] = get(self.cell.weight_ih)[rows].T
            views[f"{c}.W_h{gate}"] = get(self.cell.weight_hh)[rows].T
            views[f"{c}.b_i{gate}"] = get(self.cell.bias_ih)[rows]
            views[f"{c}.b_h{gate}"] = get(self.cell.bias_hh)[rows]
        return views


# --- minivrnn-shaped functions (NumPy in, NumPy out) ------------------------------------------------------

def from_params(params, config, dtype=torch.float64):
    """A TorchVRNN holding minivrnn's parameter dict ``params`` (names and shapes as in the README's "Public contract")."""
    model = TorchVRNN(config).to(dtype)
    views = model.named_views()
    if set(views) != set(params):
        raise ValueError(f"params: missing {sorted(set(views) - set(params))}, "
                         f"unexpected {sorted(set(params) - set(views))}")
    for name, view in views.items():
        if tuple(view.shape) != params[name].shape:
            raise ValueError(f"{name}: expected shape {tuple(view.shape)}, got {params[name].shape}")
        view.copy_(torch.as_tensor(params[name]))
    return model


def _tensor(a, dtype):
    return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)


def run(params, config, x, mask, eps, *, state0=None, kl_weight=1.0):
    """Loss, per-step terms, final state and every gradient (autograd), all as NumPy, grads keyed like params."""
    dtype = torch.float64 if np.asarray(x).dtype == np.float64 else torch.float32
    model = from_params(params, config, dtype)
    state0 = None if state0 is None else [_tensor(s, dtype) for s in state0]
    out = model.loss(_tensor(x, dtype), _tensor(mask, dtype), _tensor(eps, dtype), state0, kl_weight)
    out["loss"].backward()
    numpy = lambda t: np.ascontiguousarray(t.detach().numpy())
    return {"loss": out["loss"].item(), "nll": numpy(out["nll"]), "kl": numpy(out["kl"]),
            "final_state": tuple(numpy(s) for s in out["final_state"]),
            "grads": {k: numpy(g) for k, g in model.named_views(grad=True).items()}}


def loss_and_grads(params, config, x, mask, eps, *, state0=None, kl_weight=1.0):
    """minivrnn.loss_and_grads computed by the twin: (loss, grads) with minivrnn's names and shapes."""
    out = run(params, config, x, mask, eps, state0=state0, kl_weight=kl_weight)
    return out["loss"], out["grads"]


def sample_with_noise(params, config, noise, *, state0=None):
    """minivrnn.sampling.sample_with_noise computed by the twin, from the same noise dict; x (T, B, D)."""
    dtype = torch.float64 if noise["normal"].dtype == np.float64 else torch.float32
    model = from_params(params, config, dtype)
    state0 = None if state0 is None else [_tensor(s, dtype) for s in state0]
    noise = {k: _tensor(noise[k], dtype) for k in ("z", "normal", "u_component", "u_pen") if k in noise}
    return model.sample_with_noise(noise, state0).numpy()


def train_step(model, optimizer, x, mask, eps):
    """One training step on tensors: the loss, autograd's backward, an optimizer step (e.g. torch.optim.Adam).
    Returns the loss before the step, a float."""
    optimizer.zero_grad(set_to_none=True)
    loss = model.loss(x, mask, eps)["loss"]
    loss.backward()
    optimizer.step()
    return loss.item()
