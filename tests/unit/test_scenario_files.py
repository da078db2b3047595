"""Scenario files for users: what is required, the published JSON Schema, and `new`."""
from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from rich.console import Console

from orchestrator import catalog, model, schema
from orchestrator.cli import main
from orchestrator.report import pages

TOPOLOGY = catalog.load_topology()
ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """\
hosts: [client, router, server]
steps:
  - {host: client, call: connect, sock: c, to: "server:7"}
expect:
  app:
    client: [{call: connect, sock: c, errno: ECONNREFUSED}]
"""


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(schema.SCHEMA_FILE.read_text()))


def test_committed_schema_is_what_the_model_generates() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.current_schema(), (
        "orchestrator/scenario.schema.json is stale: run python -m orchestrator.schema and commit it")


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(schema.SCHEMA_FILE.read_text()))


def test_a_field_the_schema_does_not_describe_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "EXPECT_KEYS", model.EXPECT_KEYS | {"verdicts"})
    with pytest.raises(schema.SchemaIncomplete, match=r"expect\.verdicts .* has no schema"):
        schema.current_schema()


def test_step_arguments_come_from_the_peer_agent(tmp_path: Path) -> None:
    """A call's arguments are the agent function's: a renamed one shows in the schema."""
    peer = (catalog.IMAGES_DIR / "host" / "rstlab_peer.py").read_text()
    changed = tmp_path / "peer.py"
    changed.write_text(peer.replace("backlog: int = 16", "queue: int = 16"))
    generated = schema.build_schema(list(TOPOLOGY.hosts), schema.load_peer(changed))
    listen = generated["definitions"]["call_listen"]["properties"]
    assert "queue" in listen and "backlog" not in listen and listen["port"] == {"type": ["integer"]}


@pytest.mark.parametrize("path", sorted(catalog.BUILTIN_DIR.glob("*.yaml")) + sorted((ROOT / "examples").glob("*/*.yaml")),
                         ids=lambda p: p.parent.name + "/" + p.name)
def test_every_shipped_scenario_fits_the_schema(path: Path) -> None:
    errors = list(validator().iter_errors(yaml.safe_load(path.read_text())))
    assert not errors, jsonschema.exceptions.best_match(errors).message


@pytest.mark.parametrize("change, where", [
    (("call: connect", "call: conect"), "$.steps[0]"),
    (("sock: c, to", "sock: c, bogus: 1, to"), "$.steps[0]"),
    (("hosts: [client, router, server]", "hosts: [client, mainframe]"), "$.hosts[1]"),
    (("errno: ECONNREFUSED", "errno: 3"), "$.expect.app.client[0].errno"),
])
def test_the_schema_refuses_what_the_model_refuses(tmp_path: Path, change: tuple[str, str], where: str) -> None:
    text = MINIMAL.replace(*change)
    errors = list(validator().iter_errors(yaml.safe_load(text)))
    assert errors and any(e.json_path == where for e in errors), [e.json_path for e in errors]


def test_only_hosts_and_steps_are_required(tmp_path: Path) -> None:
    path = tmp_path / "My_Case.yaml"
    path.write_text(MINIMAL)
    s = catalog.load_scenario_file(path, TOPOLOGY)
    assert (s.id, s.title, s.claim, s.explanation) == ("my-case", "my-case", "", "")
    assert s.capture == s.hosts and len(s.app) == 1
    assert not list(validator().iter_errors(yaml.safe_load(MINIMAL)))


def test_a_scenario_yaml_in_a_folder_is_named_after_the_folder(tmp_path: Path) -> None:
    (tmp_path / "half-open").mkdir()
    path = tmp_path / "half-open" / "scenario.yaml"
    path.write_text(MINIMAL)
    assert catalog.load_scenario_file(path, TOPOLOGY).id == "half-open"


def test_pages_show_a_claim_only_when_given() -> None:
    doc = {"scenario": "x", "title": "x", "verdict": "passed", "checks": [], "claim": "", "observed": ""}
    assert "article says" not in pages.scenario_page(doc) and "claim" not in pages.scenario_page(doc).lower()
    doc["claim"] = "it resets"
    assert "**The article says:** it resets" in pages.scenario_page(doc)


def test_new_writes_a_starter_that_loads_and_fits_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    buffer = io.StringIO()
    assert main(["new", "first-case"], console=Console(file=buffer)) == 0
    path = tmp_path / "first-case.yaml"
    assert "wrote first-case.yaml" in buffer.getvalue()
    text = path.read_text()
    assert text.startswith(f"# yaml-language-server: $schema={schema.SCHEMA_FILE.as_uri()}\n")
    s = catalog.load_scenario_file(path, TOPOLOGY)
    assert s.id == "first-case" and s.packets and s.app and s.counters
    assert not list(validator().iter_errors(yaml.safe_load(text)))


def test_new_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("keep me")
    assert main(["new", str(path)]) == 2
    assert path.read_text() == "keep me"
    assert "already exists" in capsys.readouterr().err
