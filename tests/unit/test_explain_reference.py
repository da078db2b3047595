"""explain on the committed reference run (captures/reference/), without Docker: each scenario's captures are
explained as its own cause, and every verdict agrees with the reason the kernel witness recorded for the RST.

The same two checks run on a fresh run of the catalogue in tests/integration (test_explain_catalogue,
test_explain_kernel); here they pin the verdicts to the committed captures, so a change to explain that
breaks one fails at once, and so does a new scenario whose cause explain does not know.
"""
from __future__ import annotations

import json

import pytest

from orchestrator.witness import EXPLAIN_CAUSES_BY_REASON
from tests.integration.test_explain_catalogue import assert_own_cause
from tests.integration.test_explain_kernel import score
from tests.unit.test_reference import REFERENCE, scenario_folders

SCENARIOS = [p.name for p in scenario_folders()]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_reference_capture_is_explained_as_its_own_cause(scenario: str) -> None:
    assert_own_cause(REFERENCE, scenario)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_explain_agrees_with_the_kernels_reasons_on_the_reference_run(scenario: str) -> None:
    scored, _ = score(REFERENCE, [scenario])
    disagree = [s for s in scored if not s.agrees]
    assert not disagree, disagree
    doc = json.loads((REFERENCE / scenario / "result.json").read_text())
    sent = [e for e in doc["kernel_witness"]["events"] if e["event"] == "tcp_send_reset"]
    if sent:           # a scenario whose kernels sent RSTs: explain explained at least one of them
        assert any(s.kernel != "(not sent by a TCP stack)" for s in scored), scored


def test_every_cause_a_reason_allows_is_one_explain_knows() -> None:
    from orchestrator.explain import CAUSES

    allowed = set().union(*EXPLAIN_CAUSES_BY_REASON.values())
    assert allowed <= set(CAUSES), allowed - set(CAUSES)
