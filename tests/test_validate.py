import re

import numpy as np
import pytest

from minivrnn.validate import check_arrays, check_like
from minivrnn.fast import activations as act
from minivrnn.fast import gaussian, gmm, gru, kl, linear, lstm, pen
from minivrnn.ops import reparam


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


# --- every public *_backward in minivrnn.ops checks its upstream gradient before any kernel runs --------
# Each case builds a float64 forward and returns (call, good, arg): call(upstream) runs the backward with
# the forward's cache, good is an upstream gradient of the right shape, arg the name the error must give.

def _rng():
    return np.random.default_rng(0)


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _unary(forward, backward, shape=(4, 3)):
    def case():
        y, cache = forward(_rng().normal(size=shape))
        return (lambda d: backward(d, cache)), np.ones_like(y), "dy"
    return case


def _logsumexp():
    out, cache = act.logsumexp_forward(_rng().normal(size=(4, 3)))
    return (lambda d: act.logsumexp_backward(d, cache)), np.ones_like(out), "dout"


def _linear():
    rng = _rng()
    y, cache = linear.linear_forward({"W": rng.normal(size=(3, 5)), "b": rng.normal(size=5)}, rng.normal(size=(4, 3)))
    return (lambda d: linear.linear_backward(d, cache)), np.ones_like(y), "dy"


def _mlp():
    rng = _rng()
    y, cache = linear.mlp_forward(linear.init_mlp(rng, 3, [5, 2]), rng.normal(size=(4, 3)))
    return (lambda d: linear.mlp_backward(d, cache)), np.ones_like(y), "dy"


def _gaussian():
    rng = _rng()
    logp, cache = gaussian.gaussian_logpdf_forward(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), _pos(rng, 4, 3))
    return (lambda d: gaussian.gaussian_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _gmm():
    rng = _rng()
    logp, cache = gmm.gmm_logpdf_forward(rng.normal(size=(4, 2)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 2)),
                                         _pos(rng, 4, 3, 2))
    return (lambda d: gmm.gmm_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _kl():
    rng = _rng()
    kl_, cache = kl.kl_gaussian_forward(rng.normal(size=(4, 3)), _pos(rng, 4, 3), rng.normal(size=(4, 3)),
                                        _pos(rng, 4, 3))
    return (lambda d: kl.kl_gaussian_backward(d, cache)), np.ones_like(kl_), "dkl"


def _reparam():
    rng = _rng()
    z, cache = reparam.reparam_forward(rng.normal(size=(4, 3)), _pos(rng, 4, 3), rng.normal(size=(4, 3)))
    return (lambda d: reparam.reparam_backward(d, cache)), np.ones_like(z), "dz"


def _bernoulli():
    rng = _rng()
    logp, cache = pen.bernoulli_logpmf_forward((rng.random(4) < 0.5).astype(np.float64), rng.normal(size=4))
    return (lambda d: pen.bernoulli_logpmf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _bivariate():
    rng = _rng()
    logp, cache = pen.bivariate_gmm_logpdf_forward(rng.normal(size=(4, 2)), rng.normal(size=(4, 3)),
                                                   rng.normal(size=(4, 3, 2)), _pos(rng, 4, 3, 2),
                                                   rng.uniform(-0.5, 0.5, size=(4, 3)))
    return (lambda d: pen.bivariate_gmm_logpdf_backward(d, cache)), np.ones_like(logp), "dlogp"


def _gru_cell():
    rng = _rng()
    h, cache = gru.gru_cell_forward(gru.init_gru(rng, 2, 3), rng.normal(size=(4, 2)), rng.normal(size=(4, 3)))
    return (lambda d: gru.gru_cell_backward(d, cache)), np.ones_like(h), "dh_new"


def _gru_sequence():
    rng = _rng()
    hs, cache = gru.gru_sequence_forward(gru.init_gru(rng, 2, 3), rng.normal(size=(5, 4, 2)), rng.normal(size=(4, 3)))
    return (lambda d: gru.gru_sequence_backward(d, cache)), np.ones_like(hs), "dhs"


def _lstm_cell(which):
    def case():
        rng = _rng()
        (h, c), cache = lstm.lstm_cell_forward(lstm.init_lstm(rng, 2, 3), rng.normal(size=(4, 2)),
                                               rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))
        if which == "dh_new":
            return (lambda d: lstm.lstm_cell_backward((d, np.ones_like(c)), cache)), np.ones_like(h), which
        return (lambda d: lstm.lstm_cell_backward((np.ones_like(h), d), cache)), np.ones_like(c), which
    return case


def _lstm_sequence(which):
    def case():
        rng = _rng()
        (hs, cs), cache = lstm.lstm_sequence_forward(lstm.init_lstm(rng, 2, 3), rng.normal(size=(5, 4, 2)),
                                                     rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))
        if which == "dhs":
            return (lambda d: lstm.lstm_sequence_backward((d, np.ones_like(cs)), cache)), np.ones_like(hs), which
        return (lambda d: lstm.lstm_sequence_backward((np.ones_like(hs), d), cache)), np.ones_like(cs), which
    return case


BACKWARD_CASES = {
    "relu_backward": _unary(act.relu_forward, act.relu_backward),
    "tanh_backward": _unary(act.tanh_forward, act.tanh_backward),
    "sigmoid_backward": _unary(act.sigmoid_forward, act.sigmoid_backward),
    "softplus_backward": _unary(act.softplus_forward, act.softplus_backward),
    "logsumexp_backward": _logsumexp,
    "log_softmax_backward": _unary(act.log_softmax_forward, act.log_softmax_backward),
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
}

OPS_MODULES = (act, linear, gaussian, gmm, kl, reparam, pen, gru, lstm)


def test_the_cases_cover_every_public_backward():
    public = {name for m in OPS_MODULES for name in vars(m) if name.endswith("_backward") and not name.startswith("_")}
    assert public == {case.split("[")[0] for case in BACKWARD_CASES}


@pytest.fixture
def no_kernels(monkeypatch):
    """Replace every Numba kernel of the ops modules by one that fails the test if it is called."""
    def patch():
        for module in OPS_MODULES:
            for name in list(vars(module)):
                if name.startswith("_") and ("kernel" in name or name.endswith("_step_backward")):
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


@pytest.mark.parametrize("case", list(BACKWARD_CASES))
@pytest.mark.parametrize("bad", list(_bad_upstreams(np.ones((4, 3)))))
def test_wrong_upstream_shape_names_the_argument_and_the_expected_shape(case, bad, no_kernels):
    call, good, arg = BACKWARD_CASES[case]()
    upstream = _bad_upstreams(good)[bad]
    no_kernels()
    message = (rf"^{arg}: expected shape \([^)]*\) = {re.escape(str(good.shape))}, "
               rf"got {re.escape(str(upstream.shape))}$")
    with pytest.raises(ValueError, match=message):
        call(upstream)


@pytest.mark.parametrize("case", list(BACKWARD_CASES))
def test_wrong_upstream_dtype_or_type_names_the_argument(case, no_kernels):
    call, good, arg = BACKWARD_CASES[case]()
    no_kernels()
    with pytest.raises(ValueError, match=rf"^{arg}: expected dtype float64 .*, got float32$"):
        call(good.astype(np.float32))
    with pytest.raises(ValueError, match=rf"^{arg}: expected dtype float64 .*, got int64$"):
        call(good.astype(np.int64))
    with pytest.raises(ValueError, match=rf"^{arg}: expected a NumPy array, got list$"):
        call(good.tolist())


@pytest.mark.parametrize("case", list(BACKWARD_CASES))
def test_right_upstream_passes(case):
    call, good, _ = BACKWARD_CASES[case]()
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
