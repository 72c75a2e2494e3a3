"""Benchmark: minivrnn against its PyTorch twin, same model, same float32 data, same thread count.

``python -m minivrnn.bench`` prints, for each configuration and thread count, the training step time
(forward + backward + Adam), sequences per second, sampling time (generating T x B frames from noise drawn
beforehand, the same noise on both sides), peak memory and the ratio to the twin, and
the achieved GFLOP/s against this machine's measured matrix-multiply peak (a 1024x1024 float32 matmul);
then a scaling sweep (time per step against T, B and H). It writes the table to ``benchmark.md`` and the
sweep to ``scaling.png`` in ``--out``. Every measurement runs in its own worker process (one command), so
Numba's and PyTorch's thread pools never compete; figures are medians of repeated steps.
"""
import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from .fast.memory import keep_freed_memory
from .fast.threads import single_threaded_blas

CONFIGS = {  # (D, H, Z, F, T, B), one hidden layer per MLP, VRNN-Gauss, GRU
    "tiny": (2, 32, 8, 32, 50, 16),
    "speech-small": (200, 128, 32, 128, 40, 32),
    "paper-ish": (200, 512, 64, 512, 40, 32),
}
REPEATS = {"tiny": 60, "speech-small": 20, "paper-ish": 6}


def train_flops(D, H, Z, F, T, B):
    """Multiply-adds of every matrix product in one VRNN-Gauss training step, times 2 (flops), times 3
    (the backward pass does two products for each forward one)."""
    per_row = (D * F  # phi_x
               + (F + H) * F + 2 * F * Z  # encoder and its heads
               + Z * F  # phi_z
               + H * F + 2 * F * Z  # prior and its heads
               + (F + H) * F + 2 * F * D  # decoder and its heads
               + 2 * F * 3 * H + H * 3 * H)  # GRU: input and hidden products
    return 2 * 3 * per_row * T * B


def matmul_peak(threads):
    """GFLOP/s of a 1024x1024 float32 matmul with ``threads`` BLAS threads (best of 5)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2 * 1024**3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _data(D, Z, T, B):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    mask = np.ones((T, B), np.float32)
    eps = rng.standard_normal((T, B, Z)).astype(np.float32)
    return x, mask, eps


def blas_kernel():
    """Which OpenBLAS kernel family this process runs (threadpoolctl's "architecture"), e.g. Haswell."""
    from threadpoolctl import threadpool_info

    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls)

    return ",".join(sorted({i.get("architecture") or "?" for i in threadpool_info() if i["user_api"] == "blas"}))


def worker(side, name, shape, threads, repeats):
    """One measurement, in its own process: returns a dict of figures."""
    if side == "peak":  # the matmul peak, measured in the same BLAS environment as the other workers
        return {"gflops": matmul_peak(threads), "kernel": blas_kernel()}
    if side == "profile":
        return {"text": profile_text(shape, repeats)}
    D, H, Z, F, T, B = shape
    from minivrnn import VRNNConfig, init_params

    config = VRNNConfig(x_dim=D, z_dim=Z, h_dim=H, feat_dim=F, model="vrnn-gauss")
    params = init_params(config, 0, np.float32)
    x, mask, eps = _data(D, Z, T, B)
    # minivrnn runs as its commands do (BLAS on one thread, Numba splits the batch, freed memory kept for
    # reuse); PyTorch as it comes (its allocator is not affected by the malloc settings).
    if side == "minivrnn":
        keep_freed_memory()
    with single_threaded_blas() if side == "minivrnn" else contextlib.nullcontext():
        if side == "minivrnn":
            step, sample = _minivrnn_fns(config, params, x, mask, eps, threads)
        else:
            step, sample = _twin_fns(config, params, x, mask, eps, threads)
        step()  # warm-up: compilation or first-call costs are not what we measure here
        sample()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = [_timed(step) for _ in range(repeats)]
        sample_times = [_timed(sample) for _ in range(max(3, repeats // 5))]
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"side": side, "config": name, "threads": threads, "step_s": float(np.median(times)),
            "sample_s": float(np.median(sample_times)), "peak_mb": max(rss1, rss0) / 1024,
            "extra_mb": (rss1 - rss0) / 1024}


def profile_text(shape, repeats, top=14):
    """cProfile of ``repeats`` minivrnn training steps: the functions with the most time of their own."""
    import cProfile
    import io
    import pstats

    D, H, Z, F, T, B = shape
    from minivrnn import VRNNConfig, init_params

    config = VRNNConfig(x_dim=D, z_dim=Z, h_dim=H, feat_dim=F, model="vrnn-gauss")
    params = init_params(config, 0, np.float32)
    keep_freed_memory()
    with single_threaded_blas():
        step, _ = _minivrnn_fns(config, params, *_data(D, Z, T, B), 1)
        step()  # compilation is not what we profile
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeats):
            step()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt
    out.write(f"{shape}: {1e3 * total / repeats:.2f} ms per step under the profiler; own time per function:\n")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    for (path, line, func), (_, calls, own, _, _) in rows:
        where = f"{os.path.basename(path)}:{line}({func})" if line else func
        out.write(f"  {100 * own / total:5.1f} %  {1e3 * own / repeats:7.3f} ms  {calls // repeats:4d} calls"
                  f"  {where}\n")
    return out.getvalue().rstrip()


def _minivrnn_fns(config, params, x, mask, eps, threads):
    import numba

    from minivrnn import loss_and_grads
    from minivrnn.optim import Adam
    from minivrnn.sampling import draw_noise, sample_with_noise

    numba.set_num_threads(threads)
    opt = Adam(lr=1e-4)

    def step():  # what torch_twin.train_step does: forward, backward, Adam (no clipping on either side)
        _, grads = loss_and_grads(params, config, x, mask, eps)
        opt.update(params, grads)

    T, B = mask.shape
    noise = draw_noise(config, T, B, np.random.default_rng(0), np.float32)  # drawn once, as for the twin
    return step, lambda: sample_with_noise(params, config, noise)


def _twin_fns(config, params, x, mask, eps, threads):
    import torch

    from minivrnn import torch_twin
    from minivrnn.sampling import draw_noise

    torch.set_num_threads(threads)
    model = torch_twin.from_params(params, config, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    xt, mt, et = (torch.as_tensor(a) for a in (x, mask, eps))
    T, B = mask.shape
    noise = {k: torch.as_tensor(v, dtype=torch.float32)
             for k, v in draw_noise(config, T, B, np.random.default_rng(0), np.float32).items()}

    def sample():
        with torch.no_grad():
            model.sample_with_noise(noise)

    return lambda: torch_twin.train_step(model, opt, xt, mt, et), sample


# This machine kind sets these to hold OpenBLAS to its AVX2 (Haswell) kernels; ``--native-blas`` measures a
# second figure with them unset in the workers alone (OpenBLAS then picks its kernels for the CPU it finds).
BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
NATIVE_BLAS = False  # set by --native-blas for every worker this command starts


def _spawn(side, name, shape, threads, repeats):
    job = json.dumps({"side": side, "name": name, "shape": shape, "threads": threads, "repeats": repeats})
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(max(threads, 1)))
    if NATIVE_BLAS:
        for key in BLAS_PINS:
            env.pop(key, None)
    r = subprocess.run([sys.executable, "-m", "minivrnn.bench", "--worker", job], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{side} {name} x{threads} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minivrnn.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--configs", default="tiny,speech-small,paper-ish", help="comma-separated, from "
                   + ", ".join(CONFIGS))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch twin (no torch installed)")
    p.add_argument("--no-sweep", action="store_true", help="skip the scaling sweep")
    p.add_argument("--repeat-scale", type=float, default=1.0, help="multiply the number of timed steps")
    p.add_argument("--out", default="runs/bench", help="folder for benchmark.md and scaling.png")
    p.add_argument("--native-blas", action="store_true", help="a second figure: run the workers with "
                   + " and ".join(BLAS_PINS) + " unset, so OpenBLAS picks its own kernels for this CPU")
    p.add_argument("--profile", choices=sorted(CONFIGS), help="instead of the table: where one minivrnn "
                   "training step of this configuration spends its time (cProfile, 1 thread)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        shape = tuple(job["shape"] or ())  # () for the matmul-peak worker
        print(json.dumps(worker(job["side"], job["name"], shape, job["threads"], job["repeats"])))
        return 0
    global NATIVE_BLAS
    NATIVE_BLAS = args.native_blas
    if args.profile:
        print(_spawn("profile", args.profile, CONFIGS[args.profile], 1, REPEATS[args.profile])["text"])
        return 0
    sides = ["minivrnn"] + ([] if args.no_peer else ["pytorch"])
    threads = [int(t) for t in args.threads.split(",")]
    peak_runs = {t: _spawn("peak", "peak", None, t, 0) for t in threads}
    peaks = {t: r["gflops"] for t, r in peak_runs.items()}
    print("matmul peak (numpy 1024x1024 float32): "
          + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peaks.items())
          + f"  [{_blas_label(peak_runs[threads[0]]['kernel'])}]")
    rows = []
    for name in args.configs.split(","):
        shape = CONFIGS[name]
        for t in threads:
            repeats = max(3, int(REPEATS[name] * args.repeat_scale))
            res = {side: _spawn(side, name, shape, t, repeats) for side in sides}
            rows.append((name, shape, t, res))
            print(_row_text(name, shape, t, res, peaks[t]), flush=True)
    table = _markdown(rows, peaks, sides, peak_runs[threads[0]]["kernel"])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "benchmark.md"), "w") as f:
        f.write(table)
    if not args.no_sweep:
        _sweep(args.out)
    print(f"wrote {args.out}/benchmark.md" + ("" if args.no_sweep else f" and {args.out}/scaling.png"))
    return 0


def _row_text(name, shape, t, res, peak):
    D, H, Z, F, T, B = shape
    m = res["minivrnn"]
    gf = train_flops(*shape) / m["step_s"] / 1e9
    text = (f"{name:13s} {t} thread(s): minivrnn {m['step_s'] * 1e3:8.2f} ms/step  {B / m['step_s']:8.0f} seq/s  "
            f"{gf:6.1f} GFLOP/s ({100 * gf / peak:4.1f}% of peak)  sampling {m['sample_s'] * 1e3:7.2f} ms")
    if "pytorch" in res:
        q = res["pytorch"]
        text += (f" | pytorch {q['step_s'] * 1e3:8.2f} ms/step  sampling {q['sample_s'] * 1e3:7.2f} ms"
                 f" | speed-up {q['step_s'] / m['step_s']:5.2f}x")
    return text


def _blas_label(kernel):
    if NATIVE_BLAS:
        return f"{' and '.join(BLAS_PINS)} unset in the workers: OpenBLAS kernel {kernel}"
    return f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}: OpenBLAS kernel {kernel}"


def _markdown(rows, peaks, sides, kernel):
    lines = ["# minivrnn benchmark", "",
             "Matmul peak (numpy 1024x1024 float32): "
             + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peaks.items())
             + f"; {_blas_label(kernel)}.", "",
             "Training step = forward + backward + Adam, float32, VRNN-Gauss, GRU, one hidden layer per MLP; "
             "medians; each figure from its own worker process.", ""]
    columns = ["config (D, H, Z, F, T, B)", "threads", "minivrnn ms/step", "seq/s", "GFLOP/s (% peak)",
               "sampling ms", "peak MB"]
    if "pytorch" in sides:
        columns += ["PyTorch ms/step", "PyTorch sampling ms", "PyTorch peak MB", "speed-up (train)",
                    "speed-up (sampling)"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, shape, t, res in rows:
        m = res["minivrnn"]
        gf = train_flops(*shape) / m["step_s"] / 1e9
        cells = [f"{name} {shape}", str(t), f"{m['step_s'] * 1e3:.2f}", f"{shape[5] / m['step_s']:.0f}",
                 f"{gf:.1f} ({100 * gf / peaks[t]:.0f}%)", f"{m['sample_s'] * 1e3:.2f}", f"{m['peak_mb']:.0f}"]
        if "pytorch" in res:
            q = res["pytorch"]
            cells += [f"{q['step_s'] * 1e3:.2f}", f"{q['sample_s'] * 1e3:.2f}", f"{q['peak_mb']:.0f}",
                      f"{q['step_s'] / m['step_s']:.2f}x", f"{q['sample_s'] / m['sample_s']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sweep(out):
    """Time per step (minivrnn, 1 thread) against T, B and H around the speech-small configuration."""
    from matplotlib.figure import Figure

    base = dict(zip("DHZFTB", CONFIGS["speech-small"]))
    axes_values = {"T": [10, 20, 40, 80], "B": [8, 16, 32, 64], "H": [32, 64, 128, 256]}
    fig = Figure(figsize=(10, 3))
    axes = fig.subplots(1, 3)
    for ax, (letter, values) in zip(axes, axes_values.items()):
        ms = []
        for v in values:
            shape = tuple(v if k == letter else base[k] for k in "DHZFTB")
            ms.append(_spawn("minivrnn", f"sweep-{letter}{v}", shape, 1, 8)["step_s"] * 1e3)
        ax.plot(values, ms, "o-")
        ax.set_xlabel(letter)
        ax.set_ylabel("ms per training step")
        ax.set_title(f"minivrnn, 1 thread: vary {letter}")
        print(f"sweep {letter}: " + ", ".join(f"{v}: {t:.1f} ms" for v, t in zip(values, ms)))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling.png"), dpi=90)


if __name__ == "__main__":
    sys.exit(main())
