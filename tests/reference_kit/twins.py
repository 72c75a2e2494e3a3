"""The PyTorch twin (minivrnn/torch_twin.py) seen through the reference kit's adapters, and broken copies of it,
each with one bug planted: the slips the kit must catch and place (tests/test_reference_kit_bugs.py).

A broken copy is ``Broken(config, bug)``, a subclass of ``torch_twin.TorchVRNN``: the pieces the twin has as
methods (``std``, ``step``, ``output``) are overridden, and ``forward`` is the twin's, copied with the places a
bug goes marked ``# BUG``. With ``bug=None`` it is the twin (the tests hold it to the golden vectors too).
Nothing here changes torch_twin.py or its globals.

Importing this module needs torch: test modules importorskip torch first.
"""
import numpy as np
import torch
from torch.distributions import MixtureSameFamily, Normal, kl_divergence

from minivrnn import VRNNConfig, torch_twin

BUGS = {  # name: the slip, as a reader would describe it
    "kl-direction": "KL(p || q) instead of KL(q || p)",
    "sigma-exp": "sigma = exp(a) + sigma_min instead of softplus(a) + sigma_min",
    "kl-unmasked": "the KL term not multiplied by the mask",
    "gmm-no-max-shift": "the mixture's log-sum-exp without the max shift",
    "gru-update-flipped": "the GRU's update gate flipped: h' = z n + (1 - z) h",
    "bias-grad-1e-3": "the gradient of gru.b_hn off by 1e-3 (relative)",
    "bias-grad-1e-8": "the gradient of gru.b_hn off by 1e-8 (relative)",
    "loss-time-averaged": "the loss divided by T * B instead of B",
    "enc-blind": "the encoder reads [phi_x(x_t), 0] instead of [phi_x(x_t), h_{t-1}]",
    "state-moves-on-padding": "the state updated on padded steps too",
    "rho-unclipped": "rho = tanh(a) without clipping a to [-8, 8]",
    "sigma-clamped": "a standard deviation's pre-activation clamped to [-20, 20] (a common guard)",
}
GRAD_OFF = {"bias-grad-1e-3": 1e-3, "bias-grad-1e-8": 1e-8}  # bugs of the adapter's gradients, not the model


class NaiveMixture(MixtureSameFamily):
    """A mixture whose log-density is log(sum_k pi_k exp(log N_k)): right until every exp underflows to 0."""

    def log_prob(self, x):
        weights = self.mixture_distribution.probs  # (..., K)
        log_n = self.component_distribution.log_prob(x.unsqueeze(-2))  # (..., K)
        return torch.log((weights * torch.exp(log_n)).sum(-1))


def one_thread():
    """For a module-scoped fixture: torch on one thread while the kit's tests run, then as it was. The kit's
    tensors are tiny, and handing them between threads costs far more than the arithmetic (more so on a busy
    machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def flipped_gru(cell, x, h):
    """nn.GRUCell's equations written out (docs/equations.md, "GRU convention"), the update gate flipped."""
    gi, gh = x @ cell.weight_ih.T + cell.bias_ih, h @ cell.weight_hh.T + cell.bias_hh
    (ir, iz, i_n), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(i_n + r * hn)
    return z * n + (1 - z) * h  # BUG: PyTorch's is (1 - z) * n + z * h


class Broken(torch_twin.TorchVRNN):
    def __init__(self, config, bug=None):
        super().__init__(config)
        self.bug = bug

    def std(self, a):
        if self.bug == "sigma-exp":
            return torch.exp(a) + self.config.sigma_min  # BUG
        if self.bug == "sigma-clamped":
            return super().std(a.clamp(-20.0, 20.0))  # BUG
        return super().std(a)

    def step(self, inputs, state):
        if self.bug == "gru-update-flipped" and self.config.cell == "gru":
            return (flipped_gru(self.cell, inputs, state[0]),)
        return super().step(inputs, state)

    def output(self, features):
        c = self.config
        if self.bug == "rho-unclipped" and c.output_kind == "pen":
            a = {name: layer(features) for name, layer in self.heads["dec"].items()}
            sigma, shape = self.std(a["sigma"]), (c.n_mix, 2)
            return torch_twin.Pen(a["logits"], a["mu"].unflatten(-1, shape), sigma.unflatten(-1, shape),
                                  torch.tanh(a["rho"]), a["pen"][..., 0])  # BUG: no clip
        dist = super().output(features)
        if self.bug == "gmm-no-max-shift" and c.output_kind == "gmm":
            return NaiveMixture(dist.mixture_distribution, dist.component_distribution, validate_args=False)
        return dist

    def forward(self, x, mask, eps=None, state0=None, kl_weight=1.0):
        """torch_twin.TorchVRNN.forward, with the bugs switched in where they go."""
        T, B, _ = x.shape
        state = self.initial_state(B, x) if state0 is None else tuple(state0)
        px = self.phi_x(x)
        h_prevs, pzs, q_mu, q_sigma = [], [], [], []
        for t in range(T):
            h = state[0]
            h_prevs.append(h)
            if self.config.latent:
                seen = torch.zeros_like(h) if self.bug == "enc-blind" else h  # BUG when enc-blind
                q = self.gaussian("enc", self.enc(torch.cat([px[t], seen], -1)))
                z = q.loc + q.scale * eps[t]
                pzs.append(self.phi_z(z))
                q_mu.append(q.loc)
                q_sigma.append(q.scale)
                new = self.step(torch.cat([px[t], pzs[-1]], -1), state)
            else:
                new = self.step(px[t], state)
            keep = mask[t, :, None] > 0
            if self.bug == "state-moves-on-padding":
                keep = torch.ones_like(keep)  # BUG
            state = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
        h_prevs = torch.stack(h_prevs)
        if self.config.latent:
            q = Normal(torch.stack(q_mu), torch.stack(q_sigma), validate_args=False)
            p = self.prior_of(h_prevs)
            kl = (kl_divergence(p, q) if self.bug == "kl-direction" else kl_divergence(q, p)).sum(-1)  # BUG
            dec_in = torch.cat([torch.stack(pzs), h_prevs], -1)
        else:
            kl = torch.zeros_like(mask)
            dec_in = h_prevs
        log_px = self.output(self.dec(dec_in)).log_prob(x)
        nll = -log_px * mask
        kl = kl if self.bug == "kl-unmasked" else kl * mask  # BUG when kl-unmasked
        n = B * T if self.bug == "loss-time-averaged" else B  # BUG when loss-time-averaged
        loss = (nll.sum() + kl_weight * kl.sum()) / n
        return {"loss": loss, "nll": nll, "kl": kl, "final_state": state}


def build(params, config, bug=None, dtype=torch.float64):
    """A Broken model holding minivrnn's parameters (as torch_twin.from_params, for any subclass)."""
    model = Broken(VRNNConfig(**config), bug).to(dtype)
    with torch.no_grad():
        for name, view in model.named_views().items():
            view.copy_(torch.as_tensor(params[name]))
    return model


def adapter(bug=None, returns="full", dtype=torch.float64):
    """The kit's loss callable for the twin with ``bug``: ``returns="full"`` gives the per-step terms and the
    final state too, ``"bare"`` only (loss, grads), as the least an adapter may return. ``dtype``: the
    precision the twin computes in (the kit's arrays are cast to it)."""
    def loss_and_grads(params, config, x, mask, eps, state0=None):
        model = build(params, config, None if bug in GRAD_OFF else bug, dtype)
        t = lambda a: None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)
        out = model.loss(t(x), t(mask), t(eps), None if state0 is None else [t(s) for s in state0])
        out["loss"].backward()
        grads = {k: g.detach().numpy().copy() for k, g in model.named_views(grad=True).items()}
        if bug in GRAD_OFF:
            grads["gru.b_hn"] *= 1 + GRAD_OFF[bug]
        if returns == "bare":
            return out["loss"].item(), grads
        return {"loss": out["loss"].item(), "grads": grads, "nll": out["nll"].detach().numpy(),
                "kl": out["kl"].detach().numpy(), "final_state": [s.detach().numpy() for s in out["final_state"]]}
    return loss_and_grads


def sampler(bug=None):
    def sample(params, config, noise):
        model = build(params, config, None if bug in GRAD_OFF else bug)
        return model.sample_with_noise({k: torch.as_tensor(v) for k, v in noise.items()}).numpy()
    return sample


# --- densities, NumPy in and out -------------------------------------------------------------------------------

def _t(a):
    return torch.as_tensor(np.asarray(a))


def gaussian_logpdf(x, mu, sigma):
    return torch_twin.diagonal_gaussian(_t(mu), _t(sigma)).log_prob(_t(x)).numpy()


def kl_gaussian(mu_q, s_q, mu_p, s_p):
    return kl_divergence(Normal(_t(mu_q), _t(s_q)), Normal(_t(mu_p), _t(s_p))).sum(-1).numpy()


def gmm_logpdf(x, logits, mu, sigma):
    return torch_twin.gaussian_mixture(_t(logits), _t(mu), _t(sigma)).log_prob(_t(x)).numpy()


def pen_logpdf(x, logits, mu, sigma, rho, pen_logit):
    return torch_twin.Pen(_t(logits), _t(mu), _t(sigma), _t(rho), _t(pen_logit)).log_prob(_t(x)).numpy()


def broken_densities(bug):
    """The density functions of the copy with ``bug``: the kit's density checks see what the model uses."""
    out = {"gaussian_logpdf": gaussian_logpdf, "kl_gaussian": kl_gaussian, "gmm_logpdf": gmm_logpdf,
           "pen_logpdf": pen_logpdf}
    if bug == "kl-direction":
        out["kl_gaussian"] = lambda mq, sq, mp, sp: kl_gaussian(mp, sp, mq, sq)
    if bug == "gmm-no-max-shift":
        def naive(x, logits, mu, sigma):
            mixture = torch_twin.gaussian_mixture(_t(logits), _t(mu), _t(sigma))
            return NaiveMixture(mixture.mixture_distribution, mixture.component_distribution,
                                validate_args=False).log_prob(_t(x)).numpy()
        out["gmm_logpdf"] = naive
    return out


# the module as the command sees it: python -m minivrnn.reference_kit check tests.reference_kit.twins:loss_and_grads
loss_and_grads = adapter()
sample = sampler()
state_moves_on_padding = adapter("state-moves-on-padding")
loss_and_grads_float32 = adapter(dtype=torch.float32)
