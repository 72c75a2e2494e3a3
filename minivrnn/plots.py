"""PNG plots of a training run: the training curve, the per-time-step KL, samples beside real data."""
import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend switch (notebooks keep inline plots)

from .files import atomic_file


def plot_training_curve(history, path):
    """-ELBO per time step: training (epoch mean over cropped batches) and validation (whole sequences)."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_per_step"] for h in history], "o-", ms=3, label="train")
    ax.plot(steps, [h["valid_per_step"] for h in history], "o-", ms=3, label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("-ELBO per time step (nats)")
    ax.legend()
    ax.set_title("Training curve (lower is better)")
    _save(fig, path)


def plot_kl_per_step(kl_per_step, path):
    """Mean KL(q(z_t | ...) || p(z_t | ...)) at each time step (the KL term of eq. 10)."""
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.plot(np.arange(1, len(kl_per_step) + 1), kl_per_step)
    ax.set_xlabel("time step t")
    ax.set_ylabel("KL (nats)")
    ax.set_title("Per-time-step KL between posterior and prior, validation data")
    _save(fig, path)


def plot_table1(results, models, path):
    """Each run's test log-likelihood per step (one dot per seed) and the mean over seeds, one column per
    model, in Table 1's order. ``results`` as experiment.py stores them; diverged runs are left out."""
    fig = Figure(figsize=(1.3 * len(models) + 2, 3.5))
    ax = fig.subplots()
    ok = [r for r in results if r["status"] == "ok"]
    for seed in sorted({r["seed"] for r in ok}):  # a faint line joins one seed's runs: the differences are paired
        points = [(models.index(r["model"]), r["log_likelihood_per_step"]) for r in ok
                  if r["seed"] == seed and r["model"] in models]
        ax.plot(*zip(*sorted(points)), "-", lw=0.8, color="0.8", zorder=0)
    for i, model in enumerate(models):
        values = [r["log_likelihood_per_step"] for r in ok if r["model"] == model]
        if values:
            ax.plot(np.full(len(values), i), values, "o", ms=4, alpha=0.6, color="C0")
            ax.plot([i - 0.25, i + 0.25], [np.mean(values)] * 2, "-", lw=2, color="C1")
    ax.set_xticks(range(len(models)), models, rotation=20)
    ax.set_ylabel("test log-likelihood per step (nats)")
    ax.set_title("Table 1, measured: one dot per seed (grey lines join a seed), bar = mean", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_samples(real, generated, kind, path):
    """Real sequences (left) beside generated ones (right), each a (T, D) array in data units; with
    ``real=None`` only the generated ones."""
    columns = [("generated", generated)] if real is None else [("real", real), ("generated", generated)]
    n = min(3, *(len(seqs) for _, seqs in columns))
    fig = Figure(figsize=(4 * len(columns), 1.8 * n + 0.6))
    axes = fig.subplots(n, len(columns), squeeze=False)
    for row in range(n):
        for col, (name, seqs) in enumerate(columns):
            _draw(axes[row, col], seqs[row], kind)
            if row == 0:
                axes[row, col].set_title(name)
    fig.suptitle("Samples from the model" + ("" if real is None else " beside real data"))
    _save(fig, path)


def _draw(ax, seq, kind):
    if kind == "handwriting":  # (dx, dy, pen_up) -> positions, one line per stroke
        pos = np.cumsum(seq[:, :2], axis=0)
        ends = np.flatnonzero(seq[:, 2] > 0.5)
        for stroke in np.split(pos, ends + 1):
            if len(stroke):
                ax.plot(stroke[:, 0], stroke[:, 1], "k-", lw=1)
        ax.set_aspect("equal")
        ax.axis("off")
    elif kind == "speech":  # frames -> one waveform
        ax.plot(seq.reshape(-1), lw=0.5)
    else:
        ax.plot(seq, lw=1)


def _save(fig, path):
    """Atomic, as checkpoints are: to a temporary file in the same folder, then renamed over ``path``, so a
    failed write (a full disk, a read-only folder) leaves the earlier plot in place and no partial file."""
    fig.tight_layout()
    with atomic_file(path, prefix=".plot-", suffix=".png") as tmp:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=90)
