"""The compiled chain (minivrnn/fast/chain.py) reads like the readable engine: its loops are step pairs in mirror
order, over named records, with explicit entry points per cell. (That it computes what the readable engine
computes is tests/test_model.py's and tests/test_engines.py's.)"""
import ast
import inspect

import numba
import pytest

import minivrnn.fast.chain as chain

COMPILED = not numba.config.DISABLE_JIT  # (NUMBA_DISABLE_JIT=1, as CI's second run: the plain functions, no options)


def _py(function):
    """The Python function behind a Numba dispatcher (itself when Numba's JIT is disabled)."""
    return getattr(function, "py_func", function)


def _time_loop_calls(function):
    """The names of the functions called, in order, inside the ``for t in ...`` loop of ``function``."""
    tree = ast.parse(inspect.getsource(_py(function)))
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For) and node.target.id == "t"]
    assert len(loops) == 1, f"{_py(function).__name__}: expected one loop over t"
    return [node.value.func.id for node in loops[0].body
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_backward_runs_the_forward_steps_twins_in_mirror_order(cell):
    forward, backward = chain.FORWARD[cell][0], chain.BACKWARD[cell][0]
    steps = _time_loop_calls(forward)
    assert steps[0] == "state_products_step_forward" and steps[-1] == "masked_state_step_forward"
    assert f"{cell}_cell_step_forward" in steps
    assert all(name.endswith("_step_forward") for name in steps)
    assert _time_loop_calls(backward) == [name.replace("_forward", "_backward") for name in reversed(steps)]
    for name in steps + _time_loop_calls(backward):  # each a step function of chain.py, inlined into the loop
        step = getattr(chain, name)
        assert _py(step).__module__ == chain.__name__, name
        assert not COMPILED or step.targetoptions.get("inline") == "always", name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_each_cell_has_its_own_entry_points_over_named_records(cell):
    for loops in (chain.FORWARD, chain.BACKWARD):
        serial, parallel = loops[cell]
        for entry, is_parallel in ((serial, False), (parallel, True)):
            # a function of the module under its own name (no copies of one function with rewritten globals)
            name = _py(entry).__name__
            assert name.startswith(f"{cell}_chain_") and getattr(chain, name) is entry
            assert _py(entry).__globals__ is vars(chain)
            assert not COMPILED or bool(entry.targetoptions.get("parallel")) == is_parallel
            # records, not dozens of positional arrays: rows (or the number of chunks) and at most five records
            assert len(inspect.signature(_py(entry)).parameters) <= 7, name
    assert not hasattr(chain, "IS_LSTM")


def test_the_records_name_every_array_the_loops_read_and_write():
    for record in (chain.ChainInputs, chain.ChainWeights, chain.ChainStore, chain.ChainWeightsT,
                   chain.ChainUpstream, chain.ChainGrads):
        assert record.__doc__ and len(record._fields) == len(set(record._fields))
    # forward writes ChainStore, backward reads it; backward writes ChainGrads
    assert _params(chain.gru_chain_forward) == ["r0", "r1", "x", "w", "s"]
    assert _params(chain.gru_chain_backward) == ["r0", "r1", "x", "w", "s", "up", "d"]


def _params(entry):
    return list(inspect.signature(_py(entry)).parameters)
