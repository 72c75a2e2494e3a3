"""Hand-written Adam (Kingma & Ba, 2015) and global gradient-norm clipping, on plain parameter dicts."""
from dataclasses import dataclass, field

import numpy as np

from .ops._jit import kernel



@dataclass
class Adam:
    lr: float = 1e-3  # step size
    beta1: float = 0.9  # decay of the first-moment (mean) estimate
    beta2: float = 0.999  # decay of the second-moment (uncentred variance) estimate
    eps: float = 1e-8  # added to sqrt(v) so the step stays finite
    step: int = 0  # updates taken so far (for the bias correction)
    m: dict = field(default_factory=dict)  # first moments, keyed like the parameters
    v: dict = field(default_factory=dict)  # second moments
    _views: dict = field(default_factory=dict, repr=False)  # name -> the arrays and their flat views

    def update(self, params, grads):
        """One Adam step, in place on ``params`` (and the moments): one kernel call for all the arrays."""
        self.step += 1
        correction1 = 1 - self.beta1**self.step
        correction2 = 1 - self.beta2**self.step
        for names in _by_dtype(params, grads):  # (a tuple passed to Numba must hold one array type)
            p_flat, m_flat, v_flat = zip(*(self._flat_views(params, n) for n in names))
            g_flat = tuple(np.ascontiguousarray(grads[n], dtype=params[n].dtype).reshape(-1) for n in names)
            _adam_kernel(p_flat, g_flat, m_flat, v_flat, self.lr, self.beta1, self.beta2, self.eps, correction1,
                         correction2)

    def _flat_views(self, params, name):
        """Flat views of parameter ``name`` and its moments, through which the kernel writes; made (and the
        moments created) the first time, then reused while the same arrays are in place."""
        p = params[name]
        if name not in self.m:
            self.m[name], self.v[name] = np.zeros_like(p), np.zeros_like(p)
        m, v = self.m[name], self.v[name]
        cached = self._views.get(name)
        if cached is None or cached[0] is not p or cached[1] is not m or cached[2] is not v:
            if not (p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
                raise ValueError(f"{name}: Adam updates contiguous parameters and moments in place")
            cached = self._views[name] = (p, m, v, p.reshape(-1), m.reshape(-1), v.reshape(-1))
        return cached[3:]

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
    """sqrt of the sum of squares of every gradient entry (accumulated in float64)."""
    flat = lambda names: tuple(np.ascontiguousarray(grads[n]).reshape(-1) for n in names)
    return float(np.sqrt(sum(_sum_of_squares(flat(names)) for names in _by_dtype(grads, grads))))


def _by_dtype(params, names):
    """``names`` grouped by the dtype of their array in ``params``, in order: lists of names."""
    groups = {}
    for name in names:
        groups.setdefault(params[name].dtype, []).append(name)
    return list(groups.values())


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by one factor so their global norm is at most ``max_norm``; returns (grads, norm)."""
    norm = global_norm(grads)
    if max_norm is None or norm <= max_norm or norm == 0:
        return grads, norm
    scale = max_norm / norm
    return {k: (g * scale).astype(g.dtype) for k, g in grads.items()}, norm


@kernel
def _adam_kernel(params, grads, ms, vs, lr, beta1, beta2, eps, correction1, correction2):
    """Adam on tuples of flat arrays, one pass per element (float32 stays float32: the constants take the
    parameters' dtype):
        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2,
        p = p - lr (m / correction1) / (sqrt(v / correction2) + eps)."""
    for a in range(len(params)):
        p, g, m, v = params[a], grads[a], ms[a], vs[a]
        one = p.dtype.type(1.0)
        b1, b2, step, e = p.dtype.type(beta1), p.dtype.type(beta2), p.dtype.type(lr), p.dtype.type(eps)
        c1, c2 = p.dtype.type(correction1), p.dtype.type(correction2)
        for i in range(p.size):
            m[i] = b1 * m[i] + (one - b1) * g[i]
            v[i] = b2 * v[i] + (one - b2) * g[i] * g[i]
            p[i] -= step * (m[i] / c1) / (np.sqrt(v[i] / c2) + e)


@kernel
def _sum_of_squares(arrays):
    """sum of g_i^2 over a tuple of flat arrays, accumulated in float64 (a float32 sum of ~1e6 terms loses
    digits), in LANES interleaved partial sums (a single running sum is one long chain of dependent
    additions, which does not vectorise)."""
    partial = np.zeros(LANES)
    total = 0.0
    for a in range(len(arrays)):
        g = arrays[a]
        n = g.size - g.size % LANES
        for i in range(0, n, LANES):
            for k in range(LANES):
                partial[k] += np.float64(g[i + k]) * np.float64(g[i + k])
        for i in range(n, g.size):
            total += np.float64(g[i]) * np.float64(g[i])
    for k in range(LANES):
        total += partial[k]
    return total


LANES = 16
