"""Every check of the reference kit at once, for people who would rather not write a pytest file:

    python -m minivrnn.reference_kit check my_module:loss_and_grads [--sample my_module:sample]
        [--densities my_module] [--rtol 1e-4 | --float32] [--cases vrnn-gauss,vrnn-gmm]

``my_module:loss_and_grads`` is your loss callable as properties.check_loss_against_golden takes it (NumPy
in, NumPy out; README.md beside this file shows one). For every golden case the command runs the loss check,
the padding check, the chunked check (when your callable takes ``state0``) and, with ``--sample``, the sample
check; with ``--densities`` it first checks whichever of ``gaussian_logpdf``, ``kl_gaussian``, ``gmm_logpdf``
and ``pen_logpdf`` that module defines. It prints one table (check, worst error, tolerance, result,
diagnosis) and exits with 0 when every check passes, 1 when one fails, and 2, after one ``error:`` line, when
an argument is wrong (a module that cannot be imported, a name it does not define, ...).

A callable that raises NotImplementedError for a case (a variant you do not implement) skips that case.
"""
import argparse
import importlib
import os
import sys
import textwrap
import traceback

from . import golden_paths
from .properties import (
    FLOAT32_RTOL,
    FLOAT64_ONLY,
    CheckFailed,
    check_chunks,
    check_gaussian_logpdf,
    check_gmm_logpdf,
    check_kl,
    check_loss_against_golden,
    check_padding,
    check_pen_logpdf,
    check_sample_against_golden,
    takes_state0,
)

DENSITY_CHECKS = {"gaussian_logpdf": check_gaussian_logpdf, "kl_gaussian": check_kl, "gmm_logpdf": check_gmm_logpdf,
                  "pen_logpdf": check_pen_logpdf}
WIDTH = 110  # the diagnosis column is wrapped to fit a wide terminal


class BadArgument(Exception):
    """A wrong command-line argument: main prints it as one ``error:`` line and exits with 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors raised as BadArgument (one line, no usage block) instead of printed."""

    def error(self, message):
        raise BadArgument(message)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser():
    p = Parser(prog="python -m minivrnn.reference_kit", description="Check another VRNN implementation against "
               "minivrnn's golden vectors and properties (minivrnn/reference_kit/README.md).")
    sub = p.add_subparsers(dest="command", parser_class=Parser, required=True)
    c = sub.add_parser("check", help="run every applicable check and print one table",
                       description=__doc__.split("\n\n")[0])
    c.add_argument("loss", metavar="MODULE:LOSS", help="your loss callable, fn(params, config, x, mask, eps)")
    c.add_argument("--sample", metavar="MODULE:SAMPLE", help="your generation callable, fn(params, config, noise)")
    c.add_argument("--densities", metavar="MODULE", help="a module defining some of " + ", ".join(DENSITY_CHECKS))
    tol = c.add_mutually_exclusive_group()
    tol.add_argument("--rtol", type=positive_float, default=1e-9,
                     help="the relative tolerance (default 1e-9, for float64)")
    tol.add_argument("--float32", action="store_true",
                     help=f"a float32 implementation: rtol {FLOAT32_RTOL:.0e}, and the cases float32 cannot resolve "
                          f"({', '.join(FLOAT64_ONLY)}) left out")
    c.add_argument("--cases", help="only these golden cases, comma-separated (default: all of them)")
    return p


def import_module(name, what):
    """The module ``name``; ``what`` names the argument in the error (e.g. "--densities my_module")."""
    if not name:
        raise BadArgument(f"{what}: expected a module name, got an empty string")
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any failure to import is the argument's fault, said in one line
        reason = " ".join(str(e).split())  # one line, whatever the exception's message holds
        raise BadArgument(f"{what}: cannot import {name} ({type(e).__name__}: {reason})") from None


def load_callable(spec, flag):
    """``module:name`` (name may be dotted, e.g. ``module:MyVRNN.loss``) -> the callable."""
    what = f"{flag} {spec}".strip()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BadArgument(f"{what}: expected MODULE:NAME, e.g. my_vrnn_adapter:loss_and_grads")
    obj = import_module(module_name, what)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadArgument(f"{what}: {module_name} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadArgument(f"{what}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj


def select_cases(text, float32):
    paths = golden_paths(float32=float32)
    if text is None:
        return paths
    by_name = {p.stem: p for p in golden_paths()}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if not names or unknown:
        raise BadArgument(f"--cases {text}: expected names among {', '.join(sorted(by_name))}"
                          + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return [by_name[n] for n in names]


def where_raised(e):
    """"at file:line" of the innermost frame outside the kit: where your code raised."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.sep + "reference_kit" + os.sep not in f.filename]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def run_check(label, check, args, rtol):
    """One row: (check, worst error, tolerance, result, diagnosis lines)."""
    try:
        return label, check(*args, rtol=rtol), rtol, "pass", []
    except CheckFailed as e:
        return label, e.worst, rtol, "FAIL", [e.verdict] + e.diagnosis
    except NotImplementedError as e:
        return label, None, rtol, "skip", [f"not implemented: {e}" if str(e) else "not implemented"]
    except Exception as e:  # noqa: BLE001 - your function's error is a failed check, shown in the table
        return label, None, rtol, "FAIL", [f"your function raised {type(e).__name__}: {e}{where_raised(e)}"]


def run_checks(loss_fn, sample_fn, densities, paths, rtol):
    """Every applicable check, in order: the densities, then per golden case the loss, padding, chunks and
    sample checks. Returns the table's rows."""
    rows = []
    for name, check in DENSITY_CHECKS.items():
        if densities is not None and callable(getattr(densities, name, None)):
            rows.append(run_check(name, check, (getattr(densities, name),), rtol))
    chunks = takes_state0(loss_fn)
    for path in paths:
        case = path.stem
        row = run_check(f"loss {case}", check_loss_against_golden, (loss_fn, path), rtol)
        rows.append(row)
        if row[3] == "skip":  # a variant you do not implement: its other checks would only repeat that
            continue
        rows.append(run_check(f"padding {case}", check_padding, (loss_fn, path), rtol))
        if chunks:
            rows.append(run_check(f"chunks {case}", check_chunks, (loss_fn, path), rtol))
        if sample_fn is not None:
            rows.append(run_check(f"sample {case}", check_sample_against_golden, (sample_fn, path), rtol))
    return rows


def format_table(rows):
    """The rows as a text table; a diagnosis runs on below its row, one finding a line, wrapped."""
    width = max([len("check")] + [len(r[0]) for r in rows])
    head = f"{'check':<{width}}  {'worst error':>11}  {'tolerance':>9}  result  diagnosis"
    indent = " " * (width + 2 + 11 + 2 + 9 + 2 + 6 + 2)
    lines = [head, "-" * len(head)]
    for label, worst, rtol, result, diagnosis in rows:
        err = "-" if worst is None else f"{worst:.1e}"
        start = f"{label:<{width}}  {err:>11}  {rtol:>9.0e}  {result:<6}  "
        text = []
        for i, finding in enumerate(diagnosis):
            text += textwrap.wrap(finding if i == 0 else "- " + finding, WIDTH, subsequent_indent="  " if i else "")
        lines.append((start + (text[0] if text else "")).rstrip())
        lines += [indent + t for t in text[1:]]
    return "\n".join(lines)


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # `python -m` does this; main() called from elsewhere should too
        loss_fn = load_callable(args.loss, "")
        sample_fn = None if args.sample is None else load_callable(args.sample, "--sample")
        densities = None if args.densities is None else import_module(args.densities, f"--densities {args.densities}")
        if densities is not None and not any(callable(getattr(densities, n, None)) for n in DENSITY_CHECKS):
            raise BadArgument(f"--densities {args.densities}: the module defines none of {', '.join(DENSITY_CHECKS)}")
        paths = select_cases(args.cases, args.float32)
    except BadArgument as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rtol = FLOAT32_RTOL if args.float32 else args.rtol
    rows = run_checks(loss_fn, sample_fn, densities, paths, rtol)
    print(format_table(rows))
    counts = {r: sum(row[3] == r for row in rows) for r in ("pass", "FAIL", "skip")}
    print(f"\n{counts['pass']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    return 1 if counts["FAIL"] else 0
