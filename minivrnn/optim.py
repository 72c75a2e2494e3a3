"""Hand-written Adam (Kingma & Ba, 2015) and global gradient-norm clipping, on plain parameter dicts."""
from dataclasses import dataclass, field
from operator import is_
from typing import NamedTuple

import numpy as np

from .fast.jit import kernel


@dataclass
class Adam:
    lr: float = 1e-3  # step size
    beta1: float = 0.9  # decay of the first-moment (mean) estimate
    beta2: float = 0.999  # decay of the second-moment (uncentred variance) estimate
    eps: float = 1e-8  # added to sqrt(v) so the step stays finite
    step: int = 0  # updates taken so far (for the bias correction)
    m: dict = field(default_factory=dict)  # first moments, keyed like the parameters
    v: dict = field(default_factory=dict)  # second moments
    _layout: tuple = field(default=None, repr=False)  # what _groups built last (a _Layout)

    def update(self, params, grads):
        """One Adam step, in place on ``params`` (and the moments): one kernel call for all the arrays."""
        self.step += 1
        correction1 = 1 - self.beta1**self.step
        correction2 = 1 - self.beta2**self.step
        for names, p_flat, m_flat, v_flat in self._groups(params, tuple(grads)):
            dtype = m_flat.dtype  # (a gradient of another dtype is converted: a Numba tuple holds one array type)
            g_flat = tuple([(g if g.dtype == dtype else g.astype(dtype)).reshape(-1)
                            for g in map(grads.__getitem__, names)])
            _adam_kernel(p_flat, g_flat, m_flat, v_flat, self.lr, self.beta1, self.beta2, self.eps, correction1,
                         correction2)

    def _groups(self, params, names):
        """The parameters ``names`` by dtype, as (names, flat views of the parameters, m, v): the moments of a
        group live in one flat array each (``self.m[name]`` and ``self.v[name]`` are views of them), so that the
        kernel takes two tuples of arrays, not four (Numba unboxes every array of a tuple at every call, a cost
        per array; measured: docs/performance.md, "Adam and the shape checks"). Built the first time, then
        reused while the same parameter and moment arrays are in place."""
        last = self._layout
        if (last is not None and last.names == names and last.m is self.m and last.v is self.v
                and all(map(is_, map(params.__getitem__, names), last.params))
                and all(map(is_, map(self.m.get, names), last.m_views))
                and all(map(is_, map(self.v.get, names), last.v_views))):
            return last.groups
        groups = [_group(params, group, self.m, self.v) for group in _by_dtype(params, names)]
        self._layout = _Layout(names, self.m, self.v, tuple(map(params.__getitem__, names)),
                               tuple(map(self.m.__getitem__, names)), tuple(map(self.v.__getitem__, names)), groups)
        return groups

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


class _Layout(NamedTuple):
    """What Adam._groups built, and the arrays it was built for (the dicts and each array, by identity)."""
    names: tuple
    m: dict
    v: dict
    params: tuple
    m_views: tuple
    v_views: tuple
    groups: list


def _group(params, names, m, v):
    """(names, flat parameter views, m_flat, v_flat) for parameters of one dtype. The moments already in ``m``
    and ``v`` (a loaded checkpoint's) are copied into the new flat arrays, and the dicts then hold views."""
    p_flat = []
    for name in names:
        if not params[name].flags.c_contiguous:
            raise ValueError(f"{name}: Adam updates contiguous parameters in place")
        p_flat.append(params[name].reshape(-1))
    sizes = [p.size for p in p_flat]
    dtype = params[names[0]].dtype
    m_flat, v_flat = np.zeros(sum(sizes), dtype), np.zeros(sum(sizes), dtype)
    i0 = 0
    for name, size in zip(names, sizes):
        shape = params[name].shape
        for moments, flat in ((m, m_flat), (v, v_flat)):
            view = flat[i0:i0 + size].reshape(shape)
            if name in moments:
                if moments[name].shape != shape:
                    raise ValueError(f"{name}: Adam's moments have shape {moments[name].shape}, the parameter "
                                     f"{shape}")
                view[...] = moments[name]
            moments[name] = view
        i0 += size
    return tuple(names), tuple(p_flat), m_flat, v_flat


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
def _adam_kernel(params, grads, m, v, lr, beta1, beta2, eps, correction1, correction2):
    """Adam on a tuple of flat parameter arrays and their gradients, whose moments sit one after another in
    the flat arrays m and v; one pass per element (float32 stays float32: the constants take its dtype):
        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2,
        p = p - lr (m / correction1) / (sqrt(v / correction2) + eps),
    written as PyTorch's Adam computes it: p -= (lr / correction1) (m / (sqrt(v) / sqrt(correction2) + eps))."""
    ft = m.dtype.type
    one, b1, b2, e = ft(1.0), ft(beta1), ft(beta2), ft(eps)
    step, root_c2 = ft(lr / correction1), ft(np.sqrt(correction2))
    i0 = 0
    for a in range(len(params)):
        p, g = params[a], grads[a]
        ma, va = m[i0:i0 + p.size], v[i0:i0 + p.size]
        for i in range(p.size):
            mi = b1 * ma[i] + (one - b1) * g[i]
            vi = b2 * va[i] + (one - b2) * g[i] * g[i]
            ma[i], va[i] = mi, vi
            p[i] -= step * (mi / (np.sqrt(vi) / root_c2 + e))
        i0 += p.size


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
