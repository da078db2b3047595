"""`expect: reasons`: the file format, and the check against the kernel's reasons (or "not witnessed")."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import catalog
from orchestrator.errors import ScenarioFileError
from orchestrator.model import ReasonExpectation
from orchestrator.verify import Check, check_reasons, holds, mark, tally
from tests.unit.test_model import VALID, write

TOPOLOGY = catalog.load_topology()


def test_reasons_load_as_sorted_multisets(tmp_path: Path) -> None:
    text = VALID + "  reasons:\n    server: [TCP_STATE, NO_SOCKET, NO_SOCKET]\n    client: []\n"
    s = catalog.load_scenario_file(write(tmp_path, text), TOPOLOGY)
    assert s.reasons == (ReasonExpectation("server", ("NO_SOCKET", "NO_SOCKET", "TCP_STATE")),
                         ReasonExpectation("client", ()))


@pytest.mark.parametrize("reasons, message", [
    ("{server: [TCP_ABORT_ON_CLOS]}", "'TCP_ABORT_ON_CLOS' is not a kernel RST reason"),
    ("{mainframe: []}", "expect.reasons.mainframe: unknown host"),
    ("{server: TCP_STATE}", "expect.reasons.server: expected a list"),
    ("[TCP_STATE]", "expect.reasons: expected a mapping"),
])
def test_bad_reasons_are_refused(tmp_path: Path, reasons: str, message: str) -> None:
    with pytest.raises(ScenarioFileError, match=message):
        catalog.load_scenario_file(write(tmp_path, VALID + f"  reasons: {reasons}\n"), TOPOLOGY)


EXPECT = (ReasonExpectation("server", ("TCP_ABORT_ON_CLOSE",)), ReasonExpectation("client", ()))


def test_exact_multiset_per_host_passes() -> None:
    checks = check_reasons(EXPECT, {"server": ["TCP_ABORT_ON_CLOSE"], "client": []})
    assert [c.passed for c in checks] == [True, True]
    assert checks[1].observed == "no RST sent by its TCP"


@pytest.mark.parametrize("sent", [
    {"server": ["TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_CLOSE"], "client": []},   # one too many
    {"server": ["TCP_STATE"], "client": []},                                  # another reason
    {"server": [], "client": []},                                             # none sent
])
def test_a_different_multiset_fails(sent: dict[str, list[str]]) -> None:
    server, client = check_reasons(EXPECT, sent)
    assert not server.passed and client.passed and server.witnessed


def test_a_host_that_sends_one_it_should_not_fails() -> None:
    _, client = check_reasons(EXPECT, {"server": ["TCP_ABORT_ON_CLOSE"], "client": ["NO_SOCKET"]})
    assert not client.passed and client.observed == "NO_SOCKET"


def test_not_witnessed_is_neither_passed_nor_failed() -> None:
    checks = check_reasons(EXPECT, None, "not root")
    assert all(not c.witnessed and c.status == "not witnessed" for c in checks)
    assert all(holds(c) for c in checks)                  # it does not fail the scenario
    assert "not witnessed: not root" in checks[0].observed
    failed = Check("app", "client", "recv -> ECONNRESET", "ok", False)
    assert not holds(failed) and failed.status == "failed"
    records = [{"passed": True}, {"passed": False, "witnessed": False}, {"passed": False}]
    assert tally(records) == "1/2 (1 not witnessed)"
    assert [mark(r) for r in records] == ["✅", "not witnessed", "❌"]
    assert [holds(r) for r in records] == [True, True, False]


def test_every_catalogue_scenario_asserts_the_reasons_of_every_host() -> None:
    for s in catalog.builtin_scenarios(TOPOLOGY):
        assert {r.host for r in s.reasons} == set(s.hosts), f"{s.id}: expect.reasons must name every host"
        named = {r for exp in s.reasons for r in exp.reasons}
        for reason in named:
            assert reason in s.explanation, f"{s.id}: the explanation must say why the kernel gives {reason}"
