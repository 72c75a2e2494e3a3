"""Helpers for the flat parameter dict: names such as ``"enc.l0.W"`` are ``<part>.<key>``."""


def sub(params, prefix):
    """The entries of ``params`` under ``prefix`` (e.g. ``"enc."``), with the prefix stripped."""
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def add_prefixed(grads, prefix, part):
    """Add ``part``'s gradients into ``grads`` under ``prefix`` (summing when a key is already there)."""
    for key, value in part.items():
        name = prefix + key
        grads[name] = grads[name] + value if name in grads else value
    return grads
