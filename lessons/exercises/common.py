"""What every lesson's checker shares: running the reader's function safely and comparing arrays."""
import numpy as np


class NotDone(Exception):
    """The reader's function still raises NotImplementedError."""


def attempt(function, *args):
    """Call the reader's function; an unfinished one (NotImplementedError) raises NotDone, anything else it
    raises is reported as a result, not a crash of the notebook."""
    try:
        return function(*args), None
    except NotImplementedError:
        raise NotDone from None
    except Exception as e:  # a reader's bug: say what it was, keep the notebook running
        return None, f"raised {type(e).__name__}: {e}"


def compare(name, got, expected, rtol=1e-7, atol=1e-10):
    """'' if ``got`` matches ``expected``, else one line saying how it does not (shape, or the worst entry)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"{name}: shape {got.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(got)):
        return f"{name}: holds NaN or Inf"
    err = np.abs(got - expected)
    bad = err > atol + rtol * np.abs(expected)
    if not bad.any():
        return ""
    worst = np.unravel_index(np.argmax(err / (atol + rtol * np.abs(expected))), err.shape)
    return (f"{name}: {int(bad.sum())} of {bad.size} entries are off; the worst, at {tuple(map(int, worst))}, "
            f"is {got[worst]:.6g} where {expected[worst]:.6g} is expected")


def report(title, problems):
    """Print the verdict of one check: True if ``problems`` is empty."""
    problems = [p for p in problems if p]
    if problems:
        print(f"✗ {title}: not yet")
        for p in problems:
            print(f"  - {p}")
        return False
    print(f"✓ {title}: correct")
    return True


def run_check(title, body):
    """``body()`` returns a list of problem lines; an unfinished exercise prints a hint instead of failing."""
    try:
        return report(title, body())
    except NotDone:
        print(f"… {title}: not done yet (your function still raises NotImplementedError)")
        return False
