"""fast/heads.py (heads side by side, one product) equals ops/heads.py (each head its own linear layer); the
maths of both: tests/ops/test_heads.py."""
import numpy as np
import pytest

from minivrnn.fast import heads
from minivrnn.ops import heads as readable
from tests.fast.twins import assert_twins_agree


@pytest.mark.parametrize("lead", [(7,), (3, 4)])
def test_gaussian_head_matches_the_readable_ops(lead):
    rng = np.random.default_rng(0)
    inputs = {"params": readable.init_heads(rng, "prior", 5, {"mu": 3, "sigma": 3}, np.float64),
              "features": rng.normal(size=lead + (5,))}
    def forward(m, params, features):
        return m.gaussian_head_forward(params, "prior", features, 1e-3)

    assert_twins_agree(readable, heads, forward, lambda m, d, cache: m.gaussian_head_backward(*d, cache), inputs)


@pytest.mark.parametrize("kind", ["gauss", "gmm", "pen"])
def test_output_heads_and_log_likelihood_match_the_readable_ops(kind):
    rng = np.random.default_rng(1)
    F, D, K, N = 4, (3 if kind == "pen" else 2), 3, 6
    widths = {head: width(D, K) for head, width in readable.OUTPUT_HEADS[kind].items()}
    x = rng.normal(size=(N, D))
    if kind == "pen":
        x[:, 2] = rng.integers(0, 2, size=N)
    inputs = {"params": readable.init_heads(rng, "dec", F, widths, np.float64), "features": rng.normal(size=(N, F))}

    def forward(m, params, features):
        out, out_cache = m.output_params_forward(params, kind, features, D, K, 1e-3)
        logp, logp_cache = m.output_logpdf_forward(out, kind, x.astype(features.dtype))
        return (out, logp), (out_cache, logp_cache)

    def backward(m, d, cache):
        dout_direct, dlogp = d
        dout = m.output_logpdf_backward(dlogp, kind, cache[1])
        return m.output_params_backward({k: dout[k] + dout_direct[k] for k in dout}, cache[0])

    assert_twins_agree(readable, heads, forward, backward, inputs)
