"""The maths of the VRNN, one file per component; each has a forward and a backward pass.

Convention: ``*_forward(...) -> (output, cache)`` and ``*_backward(d_output, cache) -> input gradients``
(plus a dict of parameter gradients, with the keys of the parameters, where the component has any).
Nothing here knows about models, data or files.
"""
