"""Hand-written Adam (Kingma & Ba, 2015) and global gradient-norm clipping, on plain parameter dicts."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Adam:
    lr: float = 1e-3  # step size
    beta1: float = 0.9  # decay of the first-moment (mean) estimate
    beta2: float = 0.999  # decay of the second-moment (uncentred variance) estimate
    eps: float = 1e-8  # added to sqrt(v) so the step stays finite
    step: int = 0  # updates taken so far (for the bias correction)
    m: dict = field(default_factory=dict)  # first moments, keyed like the parameters
    v: dict = field(default_factory=dict)  # second moments

    def update(self, params, grads):
        """One Adam step, in place on ``params`` (and the moments)."""
        self.step += 1
        correction1 = 1 - self.beta1**self.step
        correction2 = 1 - self.beta2**self.step
        for name, g in grads.items():
            p = params[name]
            m = self.m.setdefault(name, np.zeros_like(p))
            v = self.v.setdefault(name, np.zeros_like(p))
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= (self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)).astype(p.dtype)

    def state_arrays(self):
        """The optimizer state as flat named arrays, for a checkpoint."""
        arrays = {"adam/step": np.array(self.step)}
        arrays.update({f"adam/m/{k}": v for k, v in self.m.items()})
        arrays.update({f"adam/v/{k}": v for k, v in self.v.items()})
        return arrays

    def load_state_arrays(self, arrays):
        self.step = int(arrays["adam/step"])
        self.m = {k[len("adam/m/"):]: np.array(v) for k, v in arrays.items() if k.startswith("adam/m/")}
        self.v = {k[len("adam/v/"):]: np.array(v) for k, v in arrays.items() if k.startswith("adam/v/")}


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry."""
    return float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values())))


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by one factor so their global norm is at most ``max_norm``; returns (grads, norm)."""
    norm = global_norm(grads)
    if max_norm is None or norm <= max_norm or norm == 0:
        return grads, norm
    scale = max_norm / norm
    return {k: (g * scale).astype(g.dtype) for k, g in grads.items()}, norm
