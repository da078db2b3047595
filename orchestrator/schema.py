"""The JSON Schema of the scenario file format, generated from the model.

Editors with the YAML language server complete and validate scenario files
that start with `# yaml-language-server: $schema=…`. The schema is derived,
not written by hand: the fields come from the model's key sets (TOP_KEYS,
EXPECT_KEYS, …), each step's arguments from the peer agent's own call
signatures, the host names from the topology. A field the model accepts but
this module does not describe stops the generator with a message saying so,
and a unit test fails while the committed file differs from what is generated.

Regenerate with `python -m orchestrator.schema` (writes orchestrator/scenario.schema.json).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import model, programs

SCHEMA_FILE = Path(__file__).resolve().parent / "scenario.schema.json"
JSON = dict[str, Any]

_RANGE: JSON = {"type": ["number", "string"],
                "description": "a number, or a range: 0.8..1.3, ..0.1, 2.., <0.5, >=3"}
_PATTERN: JSON = {
    "type": "string", "pattern": r"^\S+ > \S+ \S+( \S+=\S+)*$",
    "description": "SRC > DST FLAGS [key=value…]: tcpdump flags (S, S., P., F., R, R., *, none); "
                   "keys seq=, ack= (relative to the ISNs), len=, gap=LO..HI, at=LO..HI, dir=in|out, port=N (either end), "
                   "ttl=N, ipid=N, df=0|1 (the IP header)",
    "examples": ["client > server S", "server > client R. seq=0 ack=1"],
}
_TEXT: JSON = {"type": "string"}

# What each field the model accepts looks like. The key sets come from model.py;
# a key there without an entry here is reported by `build_schema`.
TOP_FIELDS: dict[str, JSON] = {
    "id": {"type": "string", "pattern": model.ID_PATTERN.pattern.join("^$"),
           "description": "lowercase letters, digits and dashes; default: the file's name"},
    "title": {**_TEXT, "description": "one line; default: the id"},
    "claim": {**_TEXT, "description": "what an article or a colleague says happens (optional; pages show it when given)"},
    "explanation": {**_TEXT, "description": "why the kernel does what it does (optional)"},
    "hosts": {"description": "the topology's hosts taking part"},
    "capture": {"description": "capture points (default: every host)"},
    "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/step"},
              "description": "what the hosts do, in order"},
    "expect": {"$ref": "#/definitions/expect"},
    "article_holds": {"type": "boolean", "default": True, "description": "false when the claim is wrong on Linux"},
    "observed": {**_TEXT, "description": "what was seen on Linux (optional)"},
    "fix": {**_TEXT, "description": "what fixes it: the remedy, in words (optional; pages show it)"},
    "settle": {"type": "number", "minimum": 0, "default": model.DEFAULT_SETTLE,
               "description": "at most this many seconds after the steps for the last segments to reach every "
                              "capture point (less when no host can still send and no packet is on its way)"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": model.DEFAULT_TIMEOUT,
                "description": "seconds all the steps may take"},
    "sysctls": {"type": "object", "description": "per host: sysctls set when its container is created",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": ["string", "number"]}}},
    "files": {"type": "object", "description": f"per host: files next to the scenario file, copied to {programs.FILES_DIR}/",
              "additionalProperties": {"type": "array", "items": {"type": "string", "pattern": "^[^/.][^/]*$"}}},
    "build": {"type": "object", "description": f"per host: C/C++ sources next to the scenario file, compiled "
                                               f"(static) into {programs.FILES_DIR}/OUTPUT (default: the source's stem)",
              "additionalProperties": {"type": "array", "items": {"oneOf": [
                  {"type": "string", "pattern": "^[^/.][^/]*\\.(c|cc|cpp|cxx)$"},
                  {"type": "object", "required": ["source"], "additionalProperties": False, "properties": {
                      "source": {"type": "string", "pattern": "^[^/.][^/]*\\.(c|cc|cpp|cxx)$"},
                      "flags": {"type": "array", "items": {"type": "string"},
                                "default": list(programs.BuildSource.flags)},
                      "output": {"type": "string", "pattern": "^[^/.][^/]*$"}}}]}}},
}
EXPECT_FIELDS: dict[str, JSON] = {
    "packets": {"type": "object", "description": "per capture point: the segments it must show",
                "additionalProperties": {"$ref": "#/definitions/capture_expectation"}},
    "app": {"type": "object", "description": "per host: its socket calls' results, in order",
            "additionalProperties": {"type": "array", "items": {"$ref": "#/definitions/app_expectation"}}},
    "counters": {"type": "object", "description": "per host: kernel counter deltas (nstat names)",
                 "additionalProperties": {"type": "object", "additionalProperties": _RANGE}},
    "reasons": {"type": "object",
                "description": "per host: the kernel's reasons (tcp:tcp_send_reset) for the RSTs its TCP sends, "
                               "exactly this multiset ([] = none)",
                "additionalProperties": {"type": "array", "items": {"enum": sorted(model.RST_REASONS)}}},
}
CAPTURE_FIELDS: dict[str, JSON] = {
    "sequence": {"type": "array", "items": _PATTERN, "description": "in this order (others may come between)"},
    "exact": {"type": "boolean", "description": "the sequence is everything the capture holds"},
    "absent": {"type": "array", "items": _PATTERN, "description": "segments that must not be there"},
}
APP_FIELDS: dict[str, JSON] = {
    "call": {"type": "string"},
    "sock": {"type": "string"},
    "errno": {"type": "string", "description": "an errno name (ECONNRESET…) or ok"},
    "result": {"description": "the call's result equals this (a mapping: contains these keys)"},
    "elapsed": {**_RANGE, "description": "seconds the call took"},
    "stdout": {"$ref": "#/definitions/text_match", "description": "what a program (exec, shell) printed"},
    "stderr": {"$ref": "#/definitions/text_match", "description": "what a program wrote on stderr"},
}
STEP_FIELDS: dict[str, JSON] = {
    "host": {"description": "the host making the call"},
    "call": {"description": "the peer agent's call"},
    "background": {"type": "boolean", "description": "do not wait for it (until a wait step or the end)"},
    "label": {"type": "string", "description": "name for {wait: LABEL}"},
    "note": {"type": "string", "description": "a comment shown on the page"},
}
_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}


class SchemaIncomplete(Exception):
    """The model accepts a field this module does not describe."""


def _described(where: str, keys: frozenset[str], fields: Mapping[str, JSON]) -> dict[str, JSON]:
    missing = sorted(keys - set(fields))
    if missing:
        raise SchemaIncomplete(f"{where}.{missing[0]} is accepted by the model but has no schema: "
                               "describe it in orchestrator/schema.py, then run python -m orchestrator.schema")
    return {k: fields[k] for k in sorted(keys)}


def load_peer(path: Path) -> ModuleType:
    """The peer agent's module (standard library only), for its call signatures."""
    spec = importlib.util.spec_from_file_location("rstlab_peer_for_schema", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _arg_schema(annotation: str) -> JSON:
    types = [t.strip() for t in str(annotation).split("|")]
    json_types = [_TYPES[t] for t in types if t in _TYPES] + (["null"] if "None" in types else [])
    if "float" in types:
        json_types.append("integer")
    return {"type": sorted(set(json_types))} if json_types and "Any" not in types else {}


def _call_step(call: str, function: Any, hosts: Sequence[str], sockopts: Sequence[str]) -> JSON:
    """A step making `call`: its arguments are the agent function's keyword parameters."""
    props: JSON = {"host": {"enum": list(hosts)}, "call": {"const": call}}
    props.update({k: v for k, v in STEP_FIELDS.items() if k not in props})
    required = ["host", "call"]
    for name, param in inspect.signature(function).parameters.items():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        key = "as" if name == "as_" else name
        props[key] = _arg_schema(param.annotation)
        if param.default is inspect.Parameter.empty:
            required.append(key)
        else:
            props[key]["default"] = param.default
    if call == "setsockopt":
        props["option"] = {"enum": list(sockopts)}
    step: JSON = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    if call == "connect":   # `to: HOST:PORT` stands for host and port
        props["to"] = {"type": "string", "pattern": f"^({'|'.join(hosts)}):[0-9]+$",
                       "description": "HOST:PORT, a scenario host"}
        step["required"] = ["host", "call", "sock"]
        step["oneOf"] = [{"required": ["to"]}, {"required": ["port"]}]
    return step


def build_schema(hosts: Sequence[str], peer: ModuleType) -> JSON:
    """The scenario format as JSON Schema (draft-07, what the YAML language server reads best)."""
    calls = sorted(model.AGENT_CALLS)
    unknown = [c for c in calls if c not in peer.CALLS]
    if unknown:
        raise SchemaIncomplete(f"steps: the model allows call {unknown[0]!r}, which the peer agent lacks")
    top = _described("scenario", model.TOP_KEYS, TOP_FIELDS)
    top["hosts"] = {**top["hosts"], "type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"enum": list(hosts)}}
    top["capture"] = {**top["capture"], "type": "array", "uniqueItems": True, "items": {"enum": list(hosts)}}
    simple_steps: list[JSON] = [
        {"type": "object", "properties": {"sleep": {"type": "number", "minimum": 0}}, "required": ["sleep"],
         "additionalProperties": False, "description": "pause, in seconds"},
        {"type": "object", "properties": {"wait": {"type": ["string", "null"]}}, "required": ["wait"],
         "additionalProperties": False, "description": "wait for background calls with this label (or all)"},
        {"type": "object", "properties": {"restart": {"enum": list(hosts)}}, "required": ["restart"],
         "additionalProperties": False, "description": "kill a host and start it again"},
    ]
    _described("steps[]", model.STEP_KEYS, STEP_FIELDS)
    sockopts = sorted(getattr(peer, "SOCKOPTS", {}))
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "RST Lab scenario",
        "description": "A scenario file: which hosts take part, what they do, what must be seen. "
                       "Generated from the model by python -m orchestrator.schema.",
        "type": "object",
        "required": ["hosts", "steps"],
        "additionalProperties": False,
        "properties": top,
        "definitions": {
            "step": {"oneOf": simple_steps + [{"$ref": f"#/definitions/call_{c}"} for c in calls]},
            **{f"call_{c}": _call_step(c, peer.CALLS[c], hosts, sockopts) for c in calls},
            "expect": {"type": "object", "additionalProperties": False,
                       "properties": _described("expect", model.EXPECT_KEYS, EXPECT_FIELDS)},
            "capture_expectation": {"oneOf": [
                {"type": "array", "items": _PATTERN, "description": "the sequence, in order"},
                {"type": "object", "additionalProperties": False,
                 "properties": _described("expect.packets.POINT", model.CAPTURE_KEYS, CAPTURE_FIELDS)},
            ]},
            "text_match": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                           "properties": {how: {"type": "string"} for how in model.TextMatch.HOWS}},
            "app_expectation": {"type": "object", "required": ["call"], "additionalProperties": False,
                                "properties": _described("expect.app.HOST[]", model.APP_KEYS, APP_FIELDS)},
        },
    }


def render(schema: JSON) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def current_schema() -> str:
    """The schema as generated from this checkout's model, peer agent and topology."""
    from . import catalog

    return render(build_schema(list(catalog.load_topology().hosts), load_peer(catalog.IMAGES_DIR / "host" / "rstlab_peer.py")))


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, compare) the committed schema file."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = current_schema()
    if "--check" in args:
        same = SCHEMA_FILE.is_file() and SCHEMA_FILE.read_text() == text
        print(f"{SCHEMA_FILE}: {'up to date' if same else 'stale: run python -m orchestrator.schema'}")
        return 0 if same else 1
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
