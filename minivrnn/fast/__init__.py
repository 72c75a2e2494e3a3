"""The fast engine: everything in minivrnn that exists for speed. A reader learning the VRNN can skip it.

It computes exactly what the readable code computes (minivrnn/readable.py built from minivrnn/ops/), to
rounding: tests/test_engines.py holds the two training steps equal in float64 for every model variant, and
tests/fast/ holds each compiled twin equal to its readable component. ``loss_and_grads`` uses this engine by
default; ``engine="readable"`` runs the readable one instead.

How to read around it: every public function here has a readable twin of the same name in minivrnn/ops/ (or
minivrnn/readable.py for the training step); read that one for the maths, and this one only to see how the
same numbers are made fast. What each piece buys, with the figures measured on our machines, is in
docs/performance.md, section "What each piece of the speed layer buys":

- engine.py      the training step over all T*B rows at once: only the recurrence is a loop over time, so
                 the prior, decoder, densities and KL of every step are single passes after the loop, and
                 every weight gradient is one matrix product over all rows.
- chain.py       that loop: the VRNN's sequential chain (encoder -> z_t -> phi_z -> recurrence) and its
                 backprop through time, compiled, with the batch split over threads when a step is big. Its
                 time step is a row of step functions named after readable.py's parts, in the same order,
                 over named records; one pair of loops per cell.
- gru.py, lstm.py   the RNN baselines' recurrence over a whole sequence in a compiled time loop; the gate
                 arithmetic of one step, shared with chain.py.
- activations.py, linear.py, gaussian.py, gmm.py, kl.py, pen.py, heads.py, recurrent.py
                 the components' compiled twins: fused passes (bias + ReLU, both heads of a Gaussian in one
                 product, the softplus and its slope in one pass) that vectorise.
- matmul.py      matrix products over all rows, split over threads when big; the chain's small per-step
                 products in tiles that fit the first-level cache.
- blas.py        BLAS's gemm called from inside compiled loops, adding into its output.
- vecmath.py     exp, expm1, log and log1p as branch-free polynomials, so that loops over them vectorise.
- jit.py         the options every kernel compiles with; the self-check of blas.py and vecmath.py on first
                 use, with a plain NumPy fallback and one warning if either disagrees with NumPy.
- kernel_cache.py   Numba's on-disk cache of compiled kernels, in a folder keyed by the sources, so that an
                 edited source is never served stale machine code.
- memory.py      freed memory kept for reuse, and the chain's weight blocks on 2 MiB pages.
- threads.py     BLAS held to one thread in our commands (Numba parallelises the batch); how many chunks a
                 job is split into.
"""
