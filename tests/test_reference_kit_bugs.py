"""The reference kit's power, proven: every check runs against copies of the PyTorch twin with one bug planted
each (tests/reference_kit/twins.py), and each bug is caught, by the checks that look where it is, with a
diagnosis that points at the right place; the checks that look elsewhere pass (a diagnosis must not cry wolf).

The expected places are the bugs' own: a KL written backwards leaves every reconstruction term and the
decoder's gradients right and the KL wrong from step 0; an encoder blind to h_(t-1) is right at step 0, where
h_0 = 0, and leaves the state after one step right; and so on (the comments of EXPECT say why for each). The
adapters are tried twice: returning everything the kit can use (the per-step terms and the final state), and
returning only (loss, grads)."""
import re
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from minivrnn import reference_kit as kit  # noqa: E402
from minivrnn.reference_kit.command import run_checks  # noqa: E402
from tests.reference_kit import twins  # noqa: E402

# bug: the case that shows it, then per check the patterns its message must hold (None: the check passes)
EXPECT = {
    # nll reads z = mu_q + sigma_q * eps and is right; the KL and whatever feeds it (encoder, prior, phi_x) are
    # off from step 0, phi_z and the cell from step 1 (they reach the KL only through h_1); dec only feeds nll
    "kl-direction": dict(
        case="vrnn-gauss",
        loss=[r"nll matches at every step; kl is off from step 0", r"nll matches and kl does not: the KL itself",
              r"gradients match for dec; they are off for phi_x, prior and enc from step 0, and for phi_z and gru "
              r"from step 1"],
        bare=[r"the first difference is at step 0", r"gradients match for dec"],
        densities={"kl_gaussian": r"your function computes KL\(p \|\| q\)"}),
    # every standard deviation: both terms at step 0, and generation's first frame
    "sigma-exp": dict(
        case="vrnn-gauss",
        loss=[r"nll is off from step 0 .*kl is off from step 0",
              r"both terms are off already: .*softplus\(a\) \+ sigma_min"],
        bare=[r"the first difference is at step 0"],
        sample=[r"the first generated value that is off is step 0"]),
    # the KL of padded steps: right on every real step, nonzero on padded ones; the junk there reaches the loss
    "kl-unmasked": dict(
        case="vrnn-gauss",
        loss=[r"kl matches on every real step but not on the padded ones \(first: step 1 of sequence 1"],
        bare=[r"first difference is at step 1", r"padded steps reach your loss"],
        padding=[r"junk on the padded steps at the end of a sequence changes the loss.*not masked",
                 r"per-step terms are not 0 on padded steps \(first: step 1 of sequence 1\)"]),
    # the frame thousands of nats from every component (step 1 of sequence 0): log 0
    "gmm-no-max-shift": dict(
        case="vrnn-gmm-edges",
        loss=[r"nll is not finite from step 1 \(sequence 0", r"log-sum-exp without the max shift"],
        bare=[r"stops being finite at step 1", r"log-sum-exp without the max shift"],
        padding=[r"your loss is inf"],
        chunks=[r"your loss is inf"],
        densities={"gmm_logpdf": r"far from every component your log-density is not finite"}),
    # step 0 reads h_0 = 0 and is right; h_1 is wrong, and a one-step call shows it
    "gru-update-flipped": dict(
        case="vrnn-gauss",
        loss=[r"nll is off from step 1 .*kl is off from step 1", r"step 0 matches and step 1 does not",
              r"after one step from h_0 = 0 your state .* is off .*the cell \(gru"],
        bare=[r"the first difference is at step 1", r"return final_state"],
        sample=[r"the first generated value that is off is step 1"]),
    # an adapter's slip in one array: nothing else is off
    "bias-grad-1e-3": dict(
        case="vrnn-gauss",
        loss=[r"the loss matches; but not the gradient of gru.b_hn",
              r"only gru.b_hn is off \(by 1.0e-03\); every other gradient matches"],
        bare=[r"only gru.b_hn is off \(by 1.0e-03\)"]),
    "bias-grad-1e-8": dict(
        case="vrnn-gauss",
        loss=[r"only gru.b_hn is off \(by 1.0e-08\); every other gradient matches, and so do the loss and the "
              r"per-step terms"],
        bare=[r"only gru.b_hn is off \(by 1.0e-08\)"]),
    # the terms are right and the loss is their sum over T * B: T = 6; the gradients share the factor
    "loss-time-averaged": dict(
        case="vrnn-gauss",
        loss=[r"your per-step terms match, but your loss is 0.166667 x .*a factor of 1/T = 1/6: the loss is "
              r"averaged over the time steps", r"every gradient is 0.166667 x the golden one"],
        bare=[r"your loss is 0.166667 x the golden one, a factor of 1/T = 1/6"],
        padding=[r"a factor of 1/T = 1/6: the loss is averaged over the time steps"],
        chunks=[r"state0 is used, but the chunks' losses add up to 2 x the whole's.*depends on the chunk's length"]),
    # right at step 0 (h_0 = 0), the cell right after one step, and no gradient for the rows reading h
    "enc-blind": dict(
        case="vrnn-gauss",
        loss=[r"step 0 matches and step 1 does not",
              r"after one step your state matches minivrnn's: the cell is right",
              r"enc.l0.W: the rows that read h_\(t-1\) \(rows 5 to 8\) get no gradient at all.*enc does not read "
              r"h_\(t-1\)"],
        bare=[r"enc does not read h_\(t-1\)"]),
    # the LSTM, so that both h and c move: only real steps after a padded one are off
    "state-moves-on-padding": dict(
        case="vrnn-gauss-lstm",
        loss=[r"every real step that is off comes after a padded step of its own sequence \(first: step 2 of "
              r"sequence 1, after the padded step 1\): a padded step moves the state"],
        bare=[r"the first difference is at step 2", r"padded steps reach your loss"],
        padding=[r"junk on the padded steps at the end of a sequence changes nothing, junk on a padded step "
                 r"inside a sequence changes the loss: a padded step moves the state",
                 r"per-step terms of sequences 0 \(from step 3\) and 1 \(from step 2\) in the batch differ",
                 r"final_state in the batch is not the state after the last real step"]),
    # the clipped components decide the frames' log-density: nll, from step 0, with the KL right
    "rho-unclipped": dict(
        case="vrnn-gmm-pen-edges",
        loss=[r"nll is off from step 0 .*kl matches at every step", r"kl matches and nll does not: the decoder",
              r"the worst is dec.rho.W"],
        bare=[r"the first difference is at step 0"],
        sample=[r"step 0 of sequence 0 \(dy\)"]),
    # pre-activations of +-25 are cut to 20: every term from step 0
    "sigma-clamped": dict(
        case="vrnn-gmm-edges",
        loss=[r"both terms are off already: .*softplus\(a\) \+ sigma_min"],
        bare=[r"the first difference is at step 0"],
        sample=[r"the first generated value that is off is step 0"]),
}
CHECKS = ("loss", "padding", "chunks", "sample")
one_torch_thread = pytest.fixture(autouse=True, scope="module")(twins.one_thread)


def golden(case):
    return kit.GOLDEN_DIR / f"{case}.npz"


def messages(rows):
    """The table's rows as {check: the failure's whole message, or None when it passed}."""
    return {label: None if result == "pass" else "\n".join(diagnosis)
            for label, _, _, result, diagnosis in rows}


def test_the_bugs_are_the_issues_eight_and_more():
    assert {"kl-direction", "sigma-exp", "kl-unmasked", "gmm-no-max-shift", "gru-update-flipped", "bias-grad-1e-3",
            "bias-grad-1e-8", "loss-time-averaged", "enc-blind", "state-moves-on-padding"} <= set(EXPECT)
    assert set(EXPECT) == set(twins.BUGS)


def test_the_unbroken_copy_passes_every_check_on_every_case():
    """The copy of the twin's forward in twins.py, without a bug, is the twin: what the bugs change is all."""
    rows = run_checks(twins.adapter(), twins.sampler(), SimpleNamespace(**twins.broken_densities(None)),
                      kit.golden_paths(), 1e-9)
    assert len(rows) == 4 + 4 * len(kit.golden_paths())  # every check ran: the densities, then 4 per case
    assert [r[0] for r in rows if r[3] != "pass"] == []


@pytest.mark.parametrize("bug", EXPECT)
def test_every_check_catches_the_bug_or_passes_where_it_is_not(bug):
    expect = EXPECT[bug]
    densities = SimpleNamespace(**twins.broken_densities(bug))
    found = messages(run_checks(twins.adapter(bug), twins.sampler(bug), densities, [golden(expect["case"])], 1e-9))
    assert any(m is not None for m in found.values()), f"{bug} was not caught"
    for check in CHECKS:
        message = found[f"{check} {expect['case']}"]
        if check not in expect:
            assert message is None, f"{bug}: the {check} check should pass, it says:\n{message}"
            continue
        assert message is not None, f"{bug}: the {check} check passed"
        for pattern in expect[check]:
            assert re.search(pattern, message), f"{bug}, {check}: no {pattern!r} in\n{message}"
    for name in ("gaussian_logpdf", "kl_gaussian", "gmm_logpdf", "pen_logpdf"):
        message, pattern = found[name], expect.get("densities", {}).get(name)
        if pattern is None:
            assert message is None, f"{bug}: {name} should pass, it says:\n{message}"
        else:
            assert message is not None and re.search(pattern, message), message


@pytest.mark.parametrize("bug", EXPECT)
def test_an_adapter_that_returns_only_loss_and_grads_gets_a_diagnosis_too(bug):
    expect = EXPECT[bug]
    with pytest.raises(kit.CheckFailed) as failed:
        kit.check_loss_against_golden(twins.adapter(bug, returns="bare"), golden(expect["case"]))
    for pattern in expect["bare"]:
        assert re.search(pattern, str(failed.value)), f"{bug}: no {pattern!r} in\n{failed.value}"


@pytest.mark.parametrize("bug, ordinary", [("gmm-no-max-shift", "vrnn-gmm"), ("rho-unclipped", "vrnn-gmm-pen"),
                                           ("sigma-clamped", "vrnn-gmm")])
def test_only_the_edge_cases_reach_these_bugs(bug, ordinary):
    """The ordinary cases never leave the safe middle of softplus, the clip or the log-sum-exp: these bugs pass
    them, which is why the *-edges cases exist."""
    assert kit.check_loss_against_golden(twins.adapter(bug), golden(ordinary)) < 1e-9
    with pytest.raises(kit.CheckFailed):
        kit.check_loss_against_golden(twins.adapter(bug), golden(EXPECT[bug]["case"]))


def test_padding_at_the_end_alone_would_not_show_a_moving_state_without_final_state():
    """Why the golden masks have padded steps inside sequences: cut to the steps before the first such hole's
    effect shows (the first two steps, where padding only ends sequences), the bare adapter's loss and gradients
    are right although its state moves on every padded step; the whole case catches it."""
    g = kit.load_golden(golden("vrnn-gauss"))
    fn = twins.adapter("state-moves-on-padding", returns="bare")
    loss, grads = fn(g["params"], g["config"], g["x"][:2], g["mask"][:2], g["eps"][:2])
    right, right_grads = twins.adapter(returns="bare")(g["params"], g["config"], g["x"][:2], g["mask"][:2],
                                                       g["eps"][:2])
    assert g["mask"][:2].min() == 0  # sequences 1 and 2 are padded at step 1, the state moves there
    assert loss == right and all((grads[k] == right_grads[k]).all() for k in grads)
    with pytest.raises(kit.CheckFailed):
        kit.check_loss_against_golden(fn, golden("vrnn-gauss"))
