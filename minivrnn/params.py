"""Helpers for the flat parameter dict: names such as ``"enc.l0.W"`` are ``<part>.<key>``."""
from functools import lru_cache


def sub(params, prefix):
    """The entries of ``params`` under ``prefix`` (e.g. ``"enc."``), with the prefix stripped."""
    return {short: params[name] for name, short in _names_under(tuple(params), prefix)}


@lru_cache(maxsize=1024)
def _names_under(names, prefix):
    """(name, name without prefix) for the names under ``prefix``: a training step asks the same few
    questions of the same keys every time, and scanning them all each time cost more than the answer."""
    return tuple((name, name[len(prefix):]) for name in names if name.startswith(prefix))


def add_prefixed(grads, prefix, part):
    """Add ``part``'s gradients into ``grads`` under ``prefix`` (summing when a key is already there)."""
    for key, value in part.items():
        name = prefix + key
        grads[name] = grads[name] + value if name in grads else value
    return grads
