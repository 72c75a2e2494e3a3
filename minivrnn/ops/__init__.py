"""The maths of the VRNN, one file per component, in plain NumPy a student can step through in a debugger.

Each file holds a component's forward pass, its backward pass and (where it has parameters) its
initialisation. Convention: ``*_forward(...) -> (output, cache)`` and ``*_backward(d_output, cache) ->``
input gradients (plus a dict of parameter gradients, with the keys of the parameters, where the component
has any). Nothing here knows about models, data, files or speed; the compiled twins of these functions,
with the same names and results, are in the compiled subpackage ``fast``, beside this one.
"""
