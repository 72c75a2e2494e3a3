"""Where another implementation goes wrong: the comparisons and diagnoses behind the checks of properties.py.

A check gives the verdict (does your loss, gradient or sample match the golden vectors?); when it does not, the
functions here say where, from what the checks already have and a few more calls of your function:

- the per-step terms (when you return them): the first time step and sequence where ``nll`` or ``kl`` is
  off, whether only padded steps are, and what the pattern at step 0 points at (at step 0 every module reads
  h_0 = 0, so a difference there is in the step's own maths, one after it in the state or how it is read);
- prefixes: the loss and the gradients of the first k steps alone, against minivrnn's readable engine
  (minivrnn/readable.py, the engine that made the golden vectors), name the first step that is off even
  when you return no per-step terms, and for each module the first step from which its gradients are off;
- the state after one step (when you return ``final_state``): right or wrong, it separates the cell from
  the modules that read h_{t-1};
- gradients grouped by module (phi_x, phi_z, prior, enc, dec, the cell), and the rows of a first layer that
  get no gradient at all where minivrnn's do (the encoder, say, does not read h_{t-1});
- the loss's normalisation: the factor by which your loss differs when the per-step terms match, named
  when it is a usual slip (averaged over time, summed over the sequences, ...).

Every finding is one line of text; the checks put them under their verdict. The maths is docs/equations.md's.
"""
import numpy as np

from ..model import VRNNConfig, backward, forward

# The modules, by the first part of a parameter's name, in the order a step runs them (the cell last).
MODULES = ("phi_x", "prior", "enc", "phi_z", "dec", "gru", "lstm")
PADDING = "docs/equations.md, 'Masks and padding'"


# --- comparing -------------------------------------------------------------------------------------------

def value_error(got, want):
    """Element by element |got - want| / (1 + |want|) (right for a loss, a log-density, a KL); inf where
    ``got`` is not finite."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - want) / (1 + np.abs(want))
    return np.where(np.isfinite(got), err, np.inf)


def array_error(got, want):
    """|got - want| / max |want| element by element (right for gradients and per-step terms, whose entries may
    be ~0 where others are large: each is compared at the scale of the whole array); inf where ``got`` is not
    finite. When ``want`` is 0 everywhere the scale is 1."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = np.abs(want).max(initial=0)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - want) / (scale if scale > 0 else 1.0)
    return np.where(np.isfinite(got), err, np.inf)


def worst(err):
    return float(np.max(err, initial=0))


def module_of(name):
    return name.split(".")[0]


def loss_result(result):
    """A loss callable may return (loss, grads) or a dict with "loss", "grads" and optionally "nll", "kl",
    "final_state"."""
    if isinstance(result, dict):
        return result
    loss, grads = result
    return {"loss": loss, "grads": grads}


def lenient_grads(grads, like):
    """Gradients as float64 arrays shaped like ``like``'s, a missing or None one as 0 (for the probes, which
    look for where an error starts; the checks themselves insist on every gradient)."""
    out = {}
    for name, want in like.items():
        got = grads.get(name) if hasattr(grads, "get") else None
        out[name] = np.zeros_like(want) if got is None else np.asarray(got, dtype=np.float64).reshape(want.shape)
    return out


def listing(items):
    items = list(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


# --- the loss against the golden vectors ---------------------------------------------------------------------

def golden_errors(result, g):
    """The error of everything ``result`` holds against the golden file ``g``: "loss" (a float) and, arrays of
    element errors, "nll", "kl" (if returned), "final_state" (a list, if returned) and "grads" (by name)."""
    errs = {"loss": float(value_error(result["loss"], g["loss"])),
            "grads": {k: array_error(result["grads"][k], want) for k, want in g["grads"].items()}}
    for term in ("nll", "kl"):
        if term in result:
            errs[term] = array_error(result[term], g[term])
    if "final_state" in result:
        errs["final_state"] = [array_error(got, want) for got, want in zip(result["final_state"], g["final_state"])]
    return errs


def worst_of(errs):
    values = [errs["loss"]] + [worst(e) for e in errs["grads"].values()]
    values += [worst(errs[t]) for t in ("nll", "kl") if t in errs]
    values += [worst(e) for e in errs.get("final_state", [])]
    return max(values)


def summary(errs, rtol):
    """One line: what is off, e.g. "the loss is off by 3.1e-01; so are the per-step kl and 23 of 30 gradients"."""
    off = [t for t in ("nll", "kl") if t in errs and worst(errs[t]) > rtol]
    off_state = [i for i, e in enumerate(errs.get("final_state", [])) if worst(e) > rtol]
    off_grads = [k for k, e in errs["grads"].items() if worst(e) > rtol]
    parts = [f"per-step {t}" for t in off]
    parts += ["final_state" + (f"[{', '.join(map(str, off_state))}]" if len(errs["final_state"]) > 1 else "")
              for _ in off_state[:1]]
    if off_grads:
        parts.append(f"{len(off_grads)} of {len(errs['grads'])} gradients" if len(off_grads) > 1
                     else f"the gradient of {off_grads[0]}")
    loss_err = errs["loss"]
    head = (f"the loss is off by {loss_err:.1e}" if loss_err > rtol else "the loss matches")
    if not parts:
        return head + f" (rtol {rtol:.0e})"
    singular = len(parts) == 1 and not parts[0][0].isdigit()
    verb = ("so is" if singular else "so are") if loss_err > rtol else "but not"
    return f"{head}; {verb} {listing(parts)} (rtol {rtol:.0e}; worst error " \
           f"{worst_of(errs):.1e})"


def diagnose_loss(loss_fn, g, result, errs, rtol):
    """The lines that say where ``result`` (your function's answer on the golden inputs) goes wrong."""
    config = VRNNConfig(**g["config"])
    lines = []
    terms = [t for t in ("nll", "kl") if t in errs]
    first_real = None  # the first time step where a term is off on a real step
    if terms:
        line, first_real = terms_line(errs, g, rtol, result)
        lines.append(line)
    scaling = normalisation_lines(result, errs, g, rtol)
    if any(line.startswith("every gradient is") for line in scaling):  # one factor explains everything
        return lines + scaling
    probe = prefix_probe(loss_fn, g, rtol)
    if probe.get("error"):
        lines.append(probe["error"])
    leak = False
    if not terms and probe.get("loss_first_off") is not None:
        k = first_real = probe["loss_first_off"]
        how = "is not finite" if probe.get("loss_first_nonfinite") == k else "is off"
        if k == 0:
            lines.append(f"the loss of step 0 alone {how} already: the first difference is at step 0")
        else:
            lines.append(f"the loss of the first k steps alone matches minivrnn's for k <= {k} and {how} for "
                         f"k = {k + 1}: the first difference is at step {k}")
        leak = probe.get("junk_moves_loss", False)
        if leak:
            lines.append(f"other junk on the padded steps among steps 0 to {k} changes your loss of them: padded "
                         f"steps reach your loss, through a term that is not masked or a state that moves on them "
                         f"(check_padding tells which; {PADDING})")
    nonfinite = nonfinite_line(result, g, probe)
    if nonfinite:
        lines.append(nonfinite)
    elif first_real is not None and not leak:
        lines += pattern_lines(errs, g, rtol, first_real, config)
        if first_real > 0 and not hole_pattern(errs, g, rtol):
            lines += state_probe_lines(loss_fn, g, rtol, config)
    lines += final_state_lines(errs, g, rtol)
    return lines + scaling + gradient_lines(result, errs, g, rtol, config, probe)


def nonfinite_line(result, g, probe):
    """Where your loss first stops being finite, and the usual reasons, or None."""
    where = None
    for term in ("nll", "kl"):
        if term in result:
            bad = np.argwhere(~np.isfinite(np.asarray(result[term], dtype=np.float64)))
            if bad.size and (where is None or tuple(bad[0]) < where[:2]):
                where = (int(bad[0][0]), int(bad[0][1]), term)
    if where is not None:
        t, b, term = where
        at = f"at step {t} of sequence {b} your {term} is not finite where minivrnn's is {g[term][t, b]:.6g}"
    elif probe.get("loss_first_nonfinite") is not None:
        at = f"your loss stops being finite at step {probe['loss_first_nonfinite']}"
    else:
        return None
    return (f"{at}: an overflow or underflow, e.g. a mixture's log-sum-exp without the max shift (exp of "
            f"log-densities far below 0 is 0; docs/equations.md, 'Closed forms'), or a standard deviation or a "
            f"correlation computed without softplus's or the clip's care ('Pen-stroke output')")


def terms_line(errs, g, rtol, result):
    """"per-step terms: nll matches at every step; kl is off from step 0 (sequence 1; 8 of 9 real steps)"."""
    mask = g["mask"]
    parts, first_real = [], None
    for term in ("nll", "kl"):
        if term not in errs:
            continue
        off = ~(errs[term] <= rtol)
        if not off.any():
            parts.append(f"{term} matches at every step")
            continue
        real, pad = off & (mask > 0), off & (mask == 0)
        if not real.any():
            t, b = np.argwhere(pad)[0]
            parts.append(f"{term} matches on every real step but not on the padded ones (first: step {t} of "
                         f"sequence {b}, where the mask is 0): a padded step must add nothing, "
                         f"{term}[t, b] = ... * mask[t, b] ({PADDING})")
            continue
        t, b = (int(v) for v in np.argwhere(real)[0])
        first_real = t if first_real is None else min(first_real, t)
        bad = ~np.isfinite(np.asarray(result[term], dtype=np.float64))
        what = "is not finite" if bad[t, b] else "is off"
        extra = f"; {int(pad.sum())} padded steps are off too" if pad.any() else ""
        parts.append(f"{term} {what} from step {t} (sequence {b}; {int(real.sum())} of {int((mask > 0).sum())} "
                     f"real steps off{extra})")
    return "per-step terms: " + "; ".join(parts), first_real


def hole_pattern(errs, g, rtol):
    """True when every real step that is off comes after a padded step inside its own sequence (a hole)."""
    mask = g["mask"]
    off = np.zeros(mask.shape, bool)
    for term in ("nll", "kl"):
        if term in errs:
            off |= ~(errs[term] <= rtol) & (mask > 0)
    if not off.any():
        return False
    return all(np.any(mask[:t, b] == 0) for t, b in np.argwhere(off))


def pattern_lines(errs, g, rtol, first_real, config):
    """What the first step that is off points at."""
    mask = g["mask"]
    if first_real is None:
        return []
    if hole_pattern(errs, g, rtol):
        off = np.zeros(mask.shape, bool)
        for term in ("nll", "kl"):
            off |= ~(errs[term] <= rtol) & (mask > 0)
        t, b = (int(v) for v in np.argwhere(off)[0])
        hole = int(np.flatnonzero(mask[:t, b] == 0)[-1])
        return [f"every real step that is off comes after a padded step of its own sequence (first: step {t} of "
                f"sequence {b}, after the padded step {hole}): a padded step moves the state, which must stay "
                f"unchanged ({PADDING})"]
    if first_real > 0:
        before = "step 0 matches" if first_real == 1 else f"steps 0 to {first_real - 1} match"
        return [f"{before} and step {first_real} does not: what differs is the state "
                f"h_{first_real} or how step {first_real} reads it: the recurrence (eq. {6 if config.latent else 1}) "
                f"or a module that reads h_(t-1)"]
    if not config.latent:
        return ["at step 0 (from h_0 = 0) the reconstruction term is off already: the decoder (eq. 2), its "
                "standard deviations (softplus(a) + sigma_min, docs/equations.md, 'Closed forms') or the output "
                "density"]
    at0 = {t: t in errs and bool(np.any(~(errs[t][0] <= rtol) & (mask[0] > 0))) for t in ("nll", "kl")}
    if "nll" not in errs or "kl" not in errs:
        return ["at step 0 (from h_0 = 0) the loss is off already: the step's own maths, not the recurrence"]
    if at0["kl"] and not at0["nll"]:
        return ["at step 0 (from h_0 = 0) nll matches and kl does not: the KL itself, its formula or its direction "
                "(KL(q || p), q the encoder's; docs/equations.md, 'Closed forms'), or the prior (eq. 4); the "
                "encoder is right, since nll reads z = mu + sigma * eps from it"]
    if at0["nll"] and not at0["kl"]:
        return ["at step 0 (from h_0 = 0) kl matches and nll does not: the decoder (eq. 5), its output density "
                "or phi_z; the encoder and the prior are right, since kl matches"]
    return ["at step 0 (from h_0 = 0) both terms are off already: something they share, the encoder (eq. 8), "
            "phi_x, or how every standard deviation is made, softplus(a) + sigma_min (docs/equations.md, "
            "'Closed forms')"]


def state_probe_lines(loss_fn, g, rtol, config):
    """Your state after one step from h_0 = 0 against minivrnn's, if your function returns ``final_state``."""
    x, mask = g["x"][:1].copy(), g["mask"][:1].copy()  # every sequence is real at step 0
    eps = None if g["eps"] is None else g["eps"][:1].copy()
    try:
        mine = loss_result(loss_fn({k: v.copy() for k, v in g["params"].items()}, dict(g["config"]), x, mask, eps))
    except Exception as e:  # noqa: BLE001 - the probe reports your function's error, it does not stop on it
        return [f"(the one-step probe raised {type(e).__name__}: {e})"]
    if "final_state" not in mine:
        return ["(return final_state to learn whether the state after one step is right: that separates the "
                "cell from the modules that read h_(t-1))"]
    ref, _ = forward(g["params"], config, x, mask, eps, engine="readable")
    err = max(worst(array_error(got, want)) for got, want in zip(mine["final_state"], ref["final_state"]))
    cell = config.cell
    reads = "[phi_x(x_t), phi_z(z_t)]" if config.latent else "phi_x(x_t)"
    if err > rtol:
        return [f"after one step from h_0 = 0 your state (final_state of a one-step call) is off by {err:.1e}, "
                f"while step 0's terms match: the cell ({cell}; docs/equations.md, '{cell.upper()} convention') "
                f"or the order of what it reads, {reads}"]
    readers = "the encoder [phi_x(x_t), h_(t-1)], the decoder [phi_z(z_t), h_(t-1)] or the prior h_(t-1)" \
        if config.latent else "the decoder, which reads h_(t-1)"
    return [f"after one step your state matches minivrnn's: the cell is right; what reads the state is not: "
            f"{readers}"]


def final_state_lines(errs, g, rtol):
    """Which sequences' final states are off, when the rest matches."""
    if "final_state" not in errs:
        return []
    rows = sorted({int(b) for e in errs["final_state"] for b in np.flatnonzero((~(e <= rtol)).any(axis=1))})
    if not rows:
        return []
    mask = g["mask"]
    ends_padded = [b for b in rows if mask[-1, b] == 0]
    line = f"final_state is off for sequence{'s' if len(rows) > 1 else ''} {listing(map(str, rows))}"
    terms_ok = all(worst(errs[t]) <= rtol for t in ("nll", "kl") if t in errs) and any(t in errs for t in ("nll", "kl"))
    if terms_ok and ends_padded:
        line += (f", which end with padded steps, while every term matches: a padded step at the end of a sequence "
                 f"moves the state ({PADDING})")
    return [line]


# --- the loss's normalisation ------------------------------------------------------------------------------------

FACTORS = {  # a usual slip in the loss's normalisation: what it divides by instead of B, and what that is
    "T": "the loss is averaged over the time steps as well",
    "B": "the loss is summed over the sequences, not averaged",
    "steps": "the loss is divided by the number of real steps, not by B",
    "B^2": "the loss is divided by B twice",
}


def factor_key(ratio, T, B, n_real):
    """Which of FACTORS scales the loss by ``ratio`` (your loss / the contract's), or None."""
    for key, value in (("T", 1 / T), ("B", float(B)), ("steps", B / n_real), ("B^2", 1 / B)):
        if abs(ratio - value) <= 1e-6 * abs(value):
            return key
    return None


def factor_name(ratio, T, B, n_real):
    """A usual slip that scales the loss by ``ratio``, described, or None."""
    key = factor_key(ratio, T, B, n_real)
    value = {"T": f"1/T = 1/{T}", "B": f"B = {B}", "steps": f"B/{n_real:g}", "B^2": "1/B"}.get(key)
    return None if key is None else f"{value}: {FACTORS[key]}"


def normalisation_lines(result, errs, g, rtol):
    """When the loss is off by a plain factor: whose factor, and whether the gradients share it."""
    if errs["loss"] <= rtol:
        return []
    mask = g["mask"]
    T, B = mask.shape
    got = float(np.asarray(result["loss"], dtype=np.float64))
    if not np.isfinite(got) or g["loss"] == 0:
        return []
    lines = []
    terms_ok = "nll" in errs and "kl" in errs and worst(errs["nll"]) <= rtol and worst(errs["kl"]) <= rtol
    if terms_ok:
        own = (np.sum(result["nll"]) + np.sum(result["kl"])) / B
        ratio = got / own
        name = factor_name(ratio, T, B, mask.sum())
        lines.append(f"your per-step terms match, but your loss is {ratio:.6g} x (sum nll + sum kl) / B of them"
                     + (f", a factor of {name}" if name else "")
                     + "; the contract sums over steps and data dimensions and averages over the B sequences "
                       "(eq. 10)")
    ratio = got / g["loss"]
    scaled = all(worst(array_error(result["grads"][k], ratio * want)) <= max(rtol, 1e-12) * 10
                 for k, want in g["grads"].items())
    if scaled:
        name = factor_name(ratio, T, B, mask.sum())
        if not terms_ok:
            lines.append(f"your loss is {ratio:.6g} x the golden one" + (f", a factor of {name}" if name else ""))
        lines.append(f"every gradient is {ratio:.6g} x the golden one, the loss's own factor: the gradients are "
                     f"right for your loss; only its normalisation differs")
    return lines


# --- gradients -----------------------------------------------------------------------------------------------------

def input_blocks(config):
    """For the first layers that read a concatenation: param name -> [(what, first row, end row)]."""
    F, H = config.feat_dim, config.h_dim
    blocks = {}
    if config.latent:
        blocks["enc.l0.W"] = [("phi_x(x_t)", 0, F), ("h_(t-1)", F, F + H)]
        blocks["dec.l0.W"] = [("phi_z(z_t)", 0, F), ("h_(t-1)", F, F + H)]
        gates = "rzn" if config.cell == "gru" else "ifgo"
        for gate in gates:
            blocks[f"{config.cell}.W_i{gate}"] = [("phi_x(x_t)", 0, F), ("phi_z(z_t)", F, 2 * F)]
    return blocks


def dead_lines(result, g, config):
    """Gradients (or first-layer rows) that are 0 everywhere in yours and not in minivrnn's: what never reaches
    your loss."""
    lines, seen = [], {}
    for name, want in g["grads"].items():
        got = np.asarray(result["grads"][name], dtype=np.float64)
        if not np.all(np.isfinite(got)):
            continue
        if not np.any(got) and np.any(want):
            lines.append(f"the gradient of {name} is 0 everywhere, where minivrnn's is not: {name} never reaches "
                         f"your loss")
            continue
        for what, lo, hi in input_blocks(config).get(name, []):
            if not np.any(got[lo:hi]) and np.any(want[lo:hi]):
                seen.setdefault((module_of(name), what, lo, hi), []).append(name)
    for (module, what, lo, hi), names in seen.items():
        lines.append(f"{listing(names)}: the rows that read {what} (rows {lo} to {hi - 1}) get no gradient at all, "
                     f"where minivrnn's do: {module} does not read {what}")
    return lines


def gradient_lines(result, errs, g, rtol, config, probe):
    """Gradients grouped by module: which match, which are off (and from which step), and what never arrives."""
    off = {k: worst(e) for k, e in errs["grads"].items() if worst(e) > rtol}
    if not off:
        return []
    lines = dead_lines(result, g, config)
    everything_else_ok = errs["loss"] <= rtol and all(worst(errs[t]) <= rtol for t in ("nll", "kl") if t in errs)
    if len(off) == 1 and everything_else_ok:
        (name, err), = off.items()
        also = "the loss and the per-step terms" if "nll" in errs else "the loss"
        verb = "do" if "nll" in errs else "does"
        return lines + [f"gradients: only {name} is off (by {err:.1e}); every other gradient matches, and so {verb} "
                        f"{also}: the backward pass for {name} alone"]
    present = [m for m in MODULES if any(module_of(k) == m for k in errs["grads"])]
    bad = [m for m in present if any(module_of(k) == m for k in off)]
    good = [m for m in present if m not in bad]
    if all(not np.isfinite(v) for v in off.values()):
        return lines + ["gradients: every one that is off is NaN or infinite"]
    first = probe.get("module_first_off", {})
    by_step = {}
    for m in bad:
        n_off, n = sum(module_of(k) == m for k in off), sum(module_of(k) == m for k in errs["grads"])
        by_step.setdefault(first.get(m), []).append(m + (f" ({n_off} of {n} arrays)" if n_off < n else ""))
    groups = [listing(ms) + ("" if step is None else f" from step {step}")
              for step, ms in sorted(by_step.items(), key=lambda item: -1 if item[0] is None else item[0])]
    worst_name = max(off, key=off.get)
    head = f"gradients match for {listing(good)}; they are off" if good else "no module's gradients match: off"
    return lines + [f"{head} for {', and for '.join(groups)}; the worst is {worst_name}, off by {off[worst_name]:.1e}"]


# --- prefixes: the first k steps alone ---------------------------------------------------------------------

def prefix_probe(loss_fn, g, rtol):
    """For k = 1..T, your loss and gradients on the first k steps alone against minivrnn's readable engine.

    Returns {"loss_first_off": the first step whose inclusion puts the loss off (k - 1), "loss_first_nonfinite",
    "module_first_off": {module: first step}} and "error" if your function raised."""
    config = VRNNConfig(**g["config"])
    T = g["mask"].shape[0]
    out = {"loss_first_off": None, "loss_first_nonfinite": None, "module_first_off": {}}
    for k in range(1, T + 1):
        x, mask = g["x"][:k].copy(), g["mask"][:k].copy()
        eps = None if g["eps"] is None else g["eps"][:k].copy()
        try:
            mine = loss_result(loss_fn({n: v.copy() for n, v in g["params"].items()}, dict(g["config"]), x, mask,
                                       eps))
            loss = float(np.asarray(mine["loss"], dtype=np.float64))
            grads = lenient_grads(mine["grads"], g["params"])
        except Exception as e:  # noqa: BLE001 - the probe reports your function's error, it does not stop on it
            out["error"] = f"(the probe of the first {k} steps alone stopped: your function raised " \
                           f"{type(e).__name__}: {e})"
            return out
        ref, cache = forward(g["params"], config, x, mask, eps, engine="readable")
        ref_grads = backward(cache)
        if out["loss_first_off"] is None and float(value_error(loss, ref["loss"])) > rtol:
            out["loss_first_off"] = k - 1
            if not np.isfinite(loss):
                out["loss_first_nonfinite"] = k - 1
            pad = mask == 0
            if pad.any() and np.isfinite(loss):  # do the padded steps among these reach the loss? junk says
                x2, eps2 = x.copy(), None if eps is None else eps.copy()
                x2[pad] = -x2[pad] - 1.5
                if eps2 is not None:
                    eps2[pad] = 3.0
                try:
                    again = loss_result(loss_fn({n: v.copy() for n, v in g["params"].items()}, dict(g["config"]),
                                                x2, mask.copy(), eps2))
                    out["junk_moves_loss"] = float(value_error(float(np.asarray(again["loss"], dtype=np.float64)),
                                                               loss)) > rtol
                except Exception:  # noqa: BLE001 - then the probe says nothing about padding
                    pass
        for name, want in ref_grads.items():
            if worst(array_error(grads[name], want)) > rtol:
                out["module_first_off"].setdefault(module_of(name), k - 1)
    return out


# --- padding ---------------------------------------------------------------------------------------------------

def holes(mask):
    """The sequences with a padded step inside them (before a real one)."""
    return [b for b in range(mask.shape[1]) if np.any(np.diff(mask[:, b]) > 0)]


def junk_lines(g, junk_run, base, rtol):
    """Which padded steps the junk reaches the loss through: those at the end of a sequence (a term not masked)
    or those inside it (the state moves on them)."""
    mask = g["mask"]
    ends = np.zeros(mask.shape, bool)
    for b in range(mask.shape[1]):
        last = np.flatnonzero(mask[:, b] > 0)[-1]
        ends[last + 1:, b] = True
    inside = (mask == 0) & ~ends
    lines = []
    moved = {}
    for where, cells in (("at the end of a sequence", ends), ("inside a sequence", inside)):
        if not cells.any():
            continue
        mine = junk_run(cells)
        moved[where] = float(value_error(mine["loss"], base["loss"]))
    if moved.get("at the end of a sequence", 0) > rtol:
        lines.append("junk on the padded steps at the end of a sequence changes the loss, and nothing reads the "
                     "state after a sequence's end: a padded step's term is not masked, nll[t, b] and kl[t, b] "
                     f"must be multiplied by mask[t, b] ({PADDING})")
    elif moved.get("inside a sequence", 0) > rtol:
        lines.append("junk on the padded steps at the end of a sequence changes nothing, junk on a padded step "
                     "inside a sequence changes the loss: a padded step moves the state, which must stay "
                     f"unchanged, s_t = s_(t-1) + m_t (s'_t - s_(t-1)) ({PADDING})")
    return lines


def alone_lines(g, base, alone, alone_right, rtol):
    """Each sequence in the batch against itself alone on its real steps (``alone``: your answers, one per
    sequence): its per-step terms step by step (when you return them), the terms on padded steps, and the loss
    against the terms it is made of. ``alone_right``: whether each alone loss matches minivrnn's (asked only
    when you return no terms)."""
    mask = g["mask"]
    T, B = mask.shape
    lines = []
    if "nll" in base and "kl" in base and all("nll" in a and "kl" in a for a in alone):
        terms = base["nll"] + base["kl"]  # (T, B)
        firsts = {}
        for b, a in enumerate(alone):
            real = np.flatnonzero(mask[:, b] > 0)
            err = value_error(terms[real, b], a["nll"][:, 0] + a["kl"][:, 0])
            if np.any(~(err <= rtol)):
                firsts[b] = int(real[np.argmax(~(err <= rtol))])
        if firsts:
            inside = all(np.any(mask[:t, b] == 0) for b, t in firsts.items())
            seqs = listing(f"{b} (from step {t})" for b, t in firsts.items())
            lines.append(f"the per-step terms of sequence{'s' if len(firsts) > 1 else ''} {seqs} in the batch differ "
                         f"from {'those' if len(firsts) > 1 else 'the sequence'} alone"
                         + (f", each after a padded step inside the sequence: a padded step moves the state, which "
                            f"must stay unchanged ({PADDING})" if inside else ""))
        padded = np.argwhere((mask == 0) & (terms != 0))
        if padded.size:
            t, b = padded[0]
            lines.append(f"the batch's per-step terms are not 0 on padded steps (first: step {t} of sequence {b}): a "
                         f"padded step must add nothing ({PADDING})")
        own = float(np.sum(terms)) / B
        ratio = base["loss"] / own if own else 1.0
        if abs(ratio - 1) > rtol:
            name = factor_name(ratio, T, B, mask.sum())
            lines.append(f"your batch loss is {ratio:.6g} x (sum nll + sum kl) / B of its own terms"
                         + (f", a factor of {name}" if name else "") + " (eq. 10: summed over steps, averaged over "
                                                                       "the B sequences)")
        return lines
    if alone_right is not None and not all(alone_right):
        keys = {factor_key(a["loss"] / r, int(np.sum(mask[:, b])), 1, np.sum(mask[:, b]))
                for b, (a, r, right) in enumerate(zip(alone, alone_right.references, alone_right)) if not right}
        key = keys.pop() if len(keys) == 1 else None
        lines.append("your loss of a sequence alone differs from minivrnn's already"
                     + (f", by a factor of 1/T, T its number of steps: {FACTORS[key]}" if key == "T" else
                        " (the golden check says where)"))
    elif alone_right is not None:
        ratio = float(base["loss"]) / np.mean([a["loss"] for a in alone])
        name = factor_name(ratio, T, B, mask.sum())
        lines.append("every sequence alone matches minivrnn's, the batch does not: "
                     + (f"its loss is {ratio:.6g} x their mean, a factor of {name}" if name else
                        "its padded steps are handled differently (return the per-step terms to see which sequence)"))
    return lines


def sequences(bs):
    """"sequence 1", "sequences 0, 1 and 2"."""
    bs = list(bs)
    return f"sequence{'s' if len(bs) > 1 else ''} {listing(map(str, bs))}"


def alone_state_line(batch_states, alone_states, mask, rtol):
    """Which sequences' final states in the batch differ from their final states alone."""
    rows = set()
    for i, state in enumerate(batch_states):
        err = array_error(state, np.concatenate([alone[i] for alone in alone_states]))  # (B, H)
        rows |= {int(b) for b in np.flatnonzero((~(err <= rtol)).any(axis=1))}
    ends = [b for b in sorted(rows) if mask[-1, b] == 0]
    return (f"final_state in the batch is not the state after the last real step for {sequences(sorted(rows))}: a "
            f"padded step moves the state ({PADDING})"
            + (f"; {sequences(ends)} end{'s' if len(ends) == 1 else ''} with padded steps" if ends else ""))


class AloneRight(list):
    """Whether each sequence's loss alone matches minivrnn's, with minivrnn's losses in ``references``."""

    def __init__(self, flags, references):
        super().__init__(flags)
        self.references = references


# --- sampling ----------------------------------------------------------------------------------------------------

def sample_lines(got, want, rtol, config):
    """The first generated step and sequence that are off, and what that points at."""
    err = array_error(got, want)  # (T, B, D)
    off = ~(err <= rtol)
    if not off.any():
        return []
    t, b, d = (int(v) for v in np.argwhere(off)[0])
    coords = [int(v) for v in np.flatnonzero(off[t, b])]
    which = {0: "dx", 1: "dy", 2: "the pen bit"} if config.output_kind == "pen" else {}
    named = listing(which.get(c, f"x[{c}]") for c in coords)
    line = f"the first generated value that is off is step {t} of sequence {b} ({named})"
    if t > 0:
        before = "step 0 matches" if t == 1 else f"steps 0 to {t - 1} match"
        return [line + f"; {before}: the first draws are right, so either the state differs (the generated x_t "
                       f"must feed phi_x at the next step, h_t = f(...), eq. {6 if config.latent else 1}) or step {t} "
                       f"uses a part of the draw the earlier steps did not (another component, larger values)"]
    parts = ["the draw of z = mu_0 + sigma_0 * noise/z (eq. 4)"] if config.latent else []
    parts.append({"gauss": "x = mu + sigma * noise/normal (eq. 5)",
                  "gmm": "the component (the first k whose cumulative weight exceeds u_component) or x = mu_k + "
                         "sigma_k * noise/normal",
                  "pen": "the component, the Cholesky factor [[s1, 0], [rho s2, s2 sqrt(1 - rho^2)]] or the pen "
                         "bit (up when u_pen < sigmoid(dec.pen))"}[config.output_kind])
    return [line + "; the first frame is off already (from h_0 = 0): " + listing(parts)
            + " (reference_kit/README.md, 'The golden file format')"]
