import re

import numpy as np
import pytest

from types import SimpleNamespace

import minivrnn.fast.activations
import minivrnn.fast.gaussian
import minivrnn.fast.gmm
import minivrnn.fast.gru
import minivrnn.fast.heads
import minivrnn.fast.kl
import minivrnn.fast.linear
import minivrnn.fast.lstm
import minivrnn.fast.pen
import minivrnn.ops.activations
import minivrnn.ops.gaussian
import minivrnn.ops.gmm
import minivrnn.ops.gru
import minivrnn.ops.heads
import minivrnn.ops.kl
import minivrnn.ops.linear
import minivrnn.ops.lstm
import minivrnn.ops.pen
from minivrnn.ops import reparam
from minivrnn.validate import check_arrays, check_like

COMPONENTS = ("activations", "linear", "gaussian", "gmm", "kl", "pen", "gru", "lstm", "heads")
# The readable maths and its compiled twins must refuse the same bad inputs with the same messages.
IMPLEMENTATIONS = {
    impl: SimpleNamespace(reparam=reparam, **{c: getattr(getattr(minivrnn, impl), c) for c in COMPONENTS})
    for impl in ("ops", "fast")
}


def test_binds_letters_and_leading_axes():
    sizes = check_arrays(x=(np.zeros((2, 3, 4)), "... D"), mu=(np.zeros((2, 3, 4)), "... D"))
    assert sizes == {"...": (2, 3), "D": 4}


def test_names_the_argument_and_the_expected_shape():
    with pytest.raises(ValueError, match=r"sigma: expected shape \(\.\.\., D\) = \(2, 4\), got \(2, 5\)"):
        check_arrays(x=(np.zeros((2, 4)), "... D"), sigma=(np.zeros((2, 5)), "... D"))


def test_leading_axes_must_agree():
    with pytest.raises(ValueError, match="mu: expected shape"):
        check_arrays(x=(np.zeros((2, 4)), "... D"), mu=(np.zeros((3, 4)), "... D"))


def test_fixed_size_and_rank():
    with pytest.raises(ValueError, match=r"xy: expected shape \(\.\.\., 2\)"):
        check_arrays(xy=(np.zeros((5, 3)), "... 2"))
    with pytest.raises(ValueError, match=r"W: expected shape \(I, O\)"):
        check_arrays(W=(np.zeros((5, 3, 1)), "I O"))


def test_dtype_must_be_float_and_shared():
    with pytest.raises(ValueError, match="x: expected dtype float32 or float64, got int64"):
        check_arrays(x=(np.zeros(3, dtype=np.int64), "D"))
    with pytest.raises(ValueError, match=r"mu: expected dtype float64 \(the dtype of x\), got float32"):
        check_arrays(x=(np.zeros(3), "D"), mu=(np.zeros(3, dtype=np.float32), "D"))
    with pytest.raises(ValueError, match="x: expected a NumPy array, got list"):
        check_arrays(x=([1.0, 2.0], "D"))


# --- check_like: the upstream gradient against the forward's output -----------------------------------

def test_check_like_passes_an_exact_match_and_a_numpy_scalar_for_shape_0():
    check_like("dy", np.zeros((2, 3)), (2, 3), np.dtype(np.float64))
    check_like("dy", np.float32(1.0), (), np.dtype(np.float32))  # a.sum(axis=-1) of a (K,) array


def test_check_like_names_the_argument_and_the_expected_shape():
    with pytest.raises(ValueError, match=r"^dy: expected shape \(\.\.\., K\) = \(4, 3\), got \(3,\)$"):
        check_like("dy", np.zeros(3), (4, 3), np.dtype(np.float64), "... K")
    with pytest.raises(ValueError, match=r"^dy: expected shape \(4, 3\), got \(4, 3, 1\)$"):
        check_like("dy", np.zeros((4, 3, 1)), (4, 3), np.dtype(np.float64))


def test_check_like_dtype_and_type():
    with pytest.raises(ValueError, match=r"^dz: expected dtype float64 \(the dtype of the forward's output\), "
                                         r"got float32$"):
        check_like("dz", np.zeros(3, np.float32), (3,), np.dtype(np.float64))
    with pytest.raises(ValueError, match="^dz: expected a NumPy array, got list$"):
        check_like("dz", [0.0, 0.0, 0.0], (3,), np.dtype(np.float64))
    with pytest.raises(ValueError, match="^dz: expected a NumPy array, got float$"):
        check_like("dz", 1.0, (), np.dtype(np.float64))


# --- every public *_backward, readable (ops) and compiled (fast), checks its upstream gradient first ----
# Each case, given the modules m of one implementation, builds a float64 forward and returns
# (call, good, arg): call(upstream) runs the backward with
# the forward's cache, good is an upstream gradient of the right shape, arg the name the error must give.

def _rng():
    return np.random.default_rng(0)


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _unary(name, shape=(4, 3)):
    def case(m):
        forward, backward = getattr(m.activations, f"{name}_forward"), getattr(m.activations, f"{name}_backward")
        y, cache = forward(_rng().normal(size=shape))
        return (lambda d: backward(d, cache)), np.ones_like(y), "dy"
    return case


def _logsumexp(m):
    out, cache = m.activations.logsumexp_forward(_rng().normal(size=(4, 3)))
    return (lambda d: m.activations.logsumexp_backward(d, cache)), np.ones_like(out), "dout"


def _linear(m):
    rng = _rng()
    y, cache = m.linear.linear_forward({"W": rng.normal(size=(3, 5)), "b": rng.normal(size=5)},
                                       rng.normal(size=(4, 3)))
    return (lambda d: m.linear.linear_backward(d, cache)), np.ones_like(y), "dy"


def _mlp(m):
    rng = _rng()
    y, cache = m.linear.mlp_forward(m.linear.init_mlp(rng, 3, [5, 2]), rng.normal(size=(4, 3)))
    return (lambda d: m.linear.mlp_backward(d, cache)), np.ones_like(y), "dy"


def _gaussian(m):
    rng = _rng()
    logp, cache = m.gaussian.gaussian_logpdf_forward(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
                                                     _pos(rng, 4, 3))
    return (lambda d: m.gaussian.gaussian_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _gmm(m):
    rng = _rng()
    logp, cache = m.gmm.gmm_logpdf_forward(rng.normal(size=(4, 2)), rng.normal(size=(4, 3)),
                                           rng.normal(size=(4, 3, 2)), _pos(rng, 4, 3, 2))
    return (lambda d: m.gmm.gmm_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _kl(m):
    rng = _rng()
    kl_, cache = m.kl.kl_gaussian_forward(rng.normal(size=(4, 3)), _pos(rng, 4, 3), rng.normal(size=(4, 3)),
                                          _pos(rng, 4, 3))
    return (lambda d: m.kl.kl_gaussian_backward(d, cache)), np.ones_like(kl_), "dkl"


def _reparam(m):
    rng = _rng()
    z, cache = m.reparam.reparam_forward(rng.normal(size=(4, 3)), _pos(rng, 4, 3), rng.normal(size=(4, 3)))
    return (lambda d: m.reparam.reparam_backward(d, cache)), np.ones_like(z), "dz"


def _bernoulli(m):
    rng = _rng()
    logp, cache = m.pen.bernoulli_logpmf_forward((rng.random(4) < 0.5).astype(np.float64), rng.normal(size=4))
    return (lambda d: m.pen.bernoulli_logpmf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _bivariate(m):
    rng = _rng()
    logp, cache = m.pen.bivariate_gmm_logpdf_forward(rng.normal(size=(4, 2)), rng.normal(size=(4, 3)),
                                                     rng.normal(size=(4, 3, 2)), _pos(rng, 4, 3, 2),
                                                     rng.uniform(-0.5, 0.5, size=(4, 3)))
    return (lambda d: m.pen.bivariate_gmm_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _gru_cell(m):
    rng = _rng()
    h, cache = m.gru.gru_cell_forward(m.gru.init_gru(rng, 2, 3), rng.normal(size=(4, 2)), rng.normal(size=(4, 3)))
    return (lambda d: m.gru.gru_cell_backward(d, cache)), np.ones_like(h), "dh_new"


def _gru_sequence(m):
    rng = _rng()
    hs, cache = m.gru.gru_sequence_forward(m.gru.init_gru(rng, 2, 3), rng.normal(size=(5, 4, 2)),
                                           rng.normal(size=(4, 3)))
    return (lambda d: m.gru.gru_sequence_backward(d, cache)), np.ones_like(hs), "dhs"


def _lstm_cell(which):
    def case(m):
        rng = _rng()
        (h, c), cache = m.lstm.lstm_cell_forward(m.lstm.init_lstm(rng, 2, 3), rng.normal(size=(4, 2)),
                                                 rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))
        if which == "dh_new":
            return (lambda d: m.lstm.lstm_cell_backward((d, np.ones_like(c)), cache)), np.ones_like(h), which
        return (lambda d: m.lstm.lstm_cell_backward((np.ones_like(h), d), cache)), np.ones_like(c), which
    return case


def _lstm_sequence(which):
    def case(m):
        rng = _rng()
        (hs, cs), cache = m.lstm.lstm_sequence_forward(m.lstm.init_lstm(rng, 2, 3), rng.normal(size=(5, 4, 2)),
                                                       rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))
        if which == "dhs":
            return (lambda d: m.lstm.lstm_sequence_backward((d, np.ones_like(cs)), cache)), np.ones_like(hs), which
        return (lambda d: m.lstm.lstm_sequence_backward((np.ones_like(hs), d), cache)), np.ones_like(cs), which
    return case


def _gaussian_head(which):
    def case(m):
        rng = _rng()
        params = m.heads.init_heads(rng, "enc", 3, {"mu": 2, "sigma": 2}, np.float64)
        (mu, sigma), cache = m.heads.gaussian_head_forward(params, "enc", rng.normal(size=(4, 3)), 1e-3)
        if which == "dmu":
            return (lambda d: m.heads.gaussian_head_backward(d, np.ones_like(sigma), cache)), np.ones_like(mu), which
        return (lambda d: m.heads.gaussian_head_backward(np.ones_like(mu), d, cache)), np.ones_like(sigma), which
    return case


def _sigma(m):
    y, cache = m.heads.sigma_forward(_rng().normal(size=(4, 3)), 1e-3)
    return (lambda d: m.heads.sigma_backward(d, cache)), np.ones_like(y), "dy"


BACKWARD_CASES = {
    "relu_backward": _unary("relu"),
    "tanh_backward": _unary("tanh"),
    "sigmoid_backward": _unary("sigmoid"),
    "softplus_backward": _unary("softplus"),
    "logsumexp_backward": _logsumexp,
    "log_softmax_backward": _unary("log_softmax"),
    "linear_backward": _linear,
    "mlp_backward": _mlp,
    "gaussian_logpdf_backward": _gaussian,
    "gmm_logpdf_backward": _gmm,
    "kl_gaussian_backward": _kl,
    "reparam_backward": _reparam,
    "bernoulli_logpmf_backward": _bernoulli,
    "bivariate_gmm_logpdf_backward": _bivariate,
    "gru_cell_backward": _gru_cell,
    "gru_sequence_backward": _gru_sequence,
    "lstm_cell_backward[dh_new]": _lstm_cell("dh_new"),
    "lstm_cell_backward[dc_new]": _lstm_cell("dc_new"),
    "lstm_sequence_backward[dhs]": _lstm_sequence("dhs"),
    "lstm_sequence_backward[dcs]": _lstm_sequence("dcs"),
    "gaussian_head_backward[dmu]": _gaussian_head("dmu"),
    "gaussian_head_backward[dsigma]": _gaussian_head("dsigma"),
    "sigma_backward": _sigma,
}
# The whole-sequence recurrences exist only compiled (the readable engine loops over the cell).
SEQUENCE_CASES = {case for case in BACKWARD_CASES if "sequence" in case}
# Backward passes whose upstream gradient is a dict of the forward's outputs (checked by the linear layers).
# and the recurrences' masked-update kernel, which only ever gets arrays they have already checked.
# Compiled kernels that write into arrays they are given (their callers check the shapes) are not checked here.
NOT_CHECKED_HERE = {"output_params_backward", "output_logpdf_backward", "masked_update_backward",
                    "gru_gates_step_backward", "lstm_gates_step_backward"}
CASES = [(impl, case) for impl in IMPLEMENTATIONS for case in BACKWARD_CASES
         if not (impl == "ops" and case in SEQUENCE_CASES)]


def _modules(impl):
    return list(vars(IMPLEMENTATIONS[impl]).values())


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_the_cases_cover_every_public_backward(impl):
    public = {name for m in _modules(impl) for name in vars(m) if name.endswith("_backward") and not name.startswith("_")}
    covered = {case.split("[")[0] for i, case in CASES if i == impl}
    assert public - NOT_CHECKED_HERE == covered


@pytest.fixture
def no_kernels(monkeypatch):
    """Replace every Numba kernel of the fast modules by one that fails the test if it is called."""
    def patch():
        for module in _modules("fast"):
            for name in list(vars(module)):
                if "kernel" in name or name.endswith("_step_backward"):
                    monkeypatch.setattr(module, name, _kernel_ran)
    return patch


def _kernel_ran(*args):
    raise AssertionError("a kernel ran before the upstream gradient was checked")


def _bad_upstreams(good):
    """Wrong upstream shapes: the first two NumPy would broadcast silently, the last two it would reject with
    its own message (or, in a kernel, not at all)."""
    shape = good.shape
    return {
        "leading-axis-dropped": np.ones(shape[1:]),
        "size-1-leading-axis": np.ones((1,) + shape[1:]),
        "last-axis-too-long": np.ones(shape[:-1] + (shape[-1] + 1,)),
        "extra-axis": np.ones(shape + (1,)),
    }


@pytest.mark.parametrize("impl, case", CASES)
@pytest.mark.parametrize("bad", list(_bad_upstreams(np.ones((4, 3)))))
def test_wrong_upstream_shape_names_the_argument_and_the_expected_shape(impl, case, bad, no_kernels):
    call, good, arg = BACKWARD_CASES[case](IMPLEMENTATIONS[impl])
    upstream = _bad_upstreams(good)[bad]
    no_kernels()
    message = (rf"^{arg}: expected shape \([^)]*\) = {re.escape(str(good.shape))}, "
               rf"got {re.escape(str(upstream.shape))}$")
    with pytest.raises(ValueError, match=message):
        call(upstream)


@pytest.mark.parametrize("impl, case", CASES)
def test_wrong_upstream_dtype_or_type_names_the_argument(impl, case, no_kernels):
    call, good, arg = BACKWARD_CASES[case](IMPLEMENTATIONS[impl])
    no_kernels()
    with pytest.raises(ValueError, match=rf"^{arg}: expected dtype float64 .*, got float32$"):
        call(good.astype(np.float32))
    with pytest.raises(ValueError, match=rf"^{arg}: expected dtype float64 .*, got int64$"):
        call(good.astype(np.int64))
    with pytest.raises(ValueError, match=rf"^{arg}: expected a NumPy array, got list$"):
        call(good.tolist())


@pytest.mark.parametrize("impl, case", CASES)
def test_right_upstream_passes(impl, case):
    call, good, _ = BACKWARD_CASES[case](IMPLEMENTATIONS[impl])
    call(good)
    call(np.asfortranarray(good)[::1])  # layout is not checked, only shape and dtype


def test_check_arrays_remembers_only_what_passed_and_still_names_a_non_array():
    class ShapeAsList:  # an unhashable "shape": the memo cannot key it, the check must still refuse it
        shape, dtype = [2, 3], np.dtype(np.float64)

    with pytest.raises(ValueError, match="x: expected a NumPy array, got ShapeAsList"):
        check_arrays(x=(ShapeAsList(), "B D"))
    a = np.zeros((2, 3))
    assert check_arrays(x=(a, "B D")) == {"B": 2, "D": 3}
    sizes = check_arrays(x=(a, "B D"))  # remembered: the same answer, and a copy the caller may change
    sizes["B"] = 99
    assert check_arrays(x=(a, "B D")) == {"B": 2, "D": 3}
    with pytest.raises(ValueError, match="y: expected shape"):  # a failure is never remembered as a pass
        check_arrays(x=(a, "B D"), y=(np.zeros((3, 3)), "B D"))
    with pytest.raises(ValueError, match="y: expected shape"):
        check_arrays(x=(a, "B D"), y=(np.zeros((3, 3)), "B D"))
