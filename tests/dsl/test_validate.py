"""Validation against the vocabulary: every problem of a project in one report, with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import FlowErrors, ParamProblem, check_file, check_project, load_flow_text, load_project
from dsl.model import OperationStep

FIXTURES = Path(__file__).parent / "fixtures"

EXPECTED = [
    "conn.yaml:3:41: unknown parameter 'pasword' of connection 'c2' (demo) (did you mean 'password'?)",
    "conn.yaml:4:20: unknown connector 'demoo', expected one of the installed connectors (did you mean 'demo'?)",
    "conn.yaml:6:19: 'jsonata-engine' must be one of auto, jsonata-python, jsonatapy, got 'fastest'",
    "flows/a.yaml:2:18: 'max-concurrency' must be an integer, got string",
    "flows/a.yaml:3:1: unknown key 'stpes' in 'flow' (did you mean 'steps'?)",
    "flows/a.yaml:5:5: unknown step 'demo.qury', expected one of the known steps (did you mean 'demo.query'?)",
    "flows/a.yaml:7:5: missing parameter 'message' of demo.echo",
    "flows/a.yaml:11:7: unknown parameter 'mesage' of demo.echo (did you mean 'message'?)",
    "flows/a.yaml:13:27: invalid JSONata: Unexpected end of expression (S0207)",
    "flows/a.yaml:14:14: 'count' must be an integer, got string",
    "flows/a.yaml:15:13: 'mode' cannot hold a #[ ] expression, "
    "expected a fixed value (it is needed before any message exists)",
    "flows/a.yaml:16:11: unknown property 'nope', expected it in a property file, or environment variable NOPE",
    "flows/a.yaml:17:15: unknown flow 'betaa' in flow-ref, expected the name of a flow of this project",
    "flows/a.yaml:18:5: a transform needs exactly one of 'expression' and 'file'",
    "flows/a.yaml:19:27: invalid value '1x' for 'name', expected variable name",
    "flows/a.yaml:20:31: 'level' must be one of debug, info, warning, error, got 'verbose'",
    "flows/a.yaml:21:49: 'concurrency' must be at least 1, got 0",
    "flows/a.yaml:23:9: 'otherwise' must be the last branch, on its own",
    "flows/a.yaml:26:5: unknown connection 'nope', expected one of the 'demo' connections: c1, c2",
    "flows/a.yaml:27:5: step has no step key, expected one of the known steps",
    "flows/a.yaml:28:5: a step must be a mapping, got int 42, expected one step key such as 'transform:' or 'log:'",
    "flows/a.yaml:30:12: invalid error type 'BAD TYPE', expected NAMESPACE:KIND, NAMESPACE:* or ANY",
    "flows/a.yaml:31:11: 'then' must be one of continue, propagate, dead-letter, got 'explode'",
    "flows/a.yaml:33:5: 'payload' is only used with 'then: continue'",
    "flows/a.yaml:34:24: 'attempts' must be at least 0, got -1",
    "flows/a.yaml:34:43: invalid value '5 parsecs' for 'initial-delay', "
    "expected a duration: 250ms, 30s, 5m, 1h, 1d, or a number of seconds",
    "flows/a.yaml:36:3: a schedule needs exactly one of 'every' and 'cron', expected 'every: 5m' or 'cron: \"0 2 * * *\"'",
    "flows/b.yaml:1:7: duplicate flow name 'alpha' (first at flows/a.yaml:1:7), expected a unique flow name",
    "flows/b.yaml:3:3: unknown trigger 'demo.tick', expected one of the known triggers (did you mean 'demo.ticks'?)",
    "flows/c.yaml:3:26: invalid value 'orders' for 'path', expected URL path, starting with '/'",
    "flows/c.yaml:3:47: unknown parameter 'extra' of http.listener, expected one of: path, method, response-status",
    "flows/c.yaml:5:5: demo.echo needs 'connection': several 'demo' connections exist, expected one of: "
    "c1, c2",
    "other.yaml:1:1: not a flow or config file, expected a flow file (a mapping with 'flow:') "
    "or a config file ('connections:' / 'settings:')",
]


#: The project behind EXPECTED (the editor schema's tests check its files too).
BAD_PROJECT = {
    "flows/a.yaml": (FIXTURES / "bad-flow.yaml").read_text(),
    "flows/b.yaml": "flow: alpha\ntrigger:\n  demo.tick: {}\nsteps:\n  - log: x\n",
    "flows/c.yaml": "flow: gamma\ntrigger:\n  http.listener: { path: orders, method: GET, extra: 1 }\n"
                    "steps:\n  - demo.echo: { message: x }\n",
    "conn.yaml": "connections:\n  c1: { connector: demo, url: http://a }\n"
                 "  c2: { connector: demo, url: http://b, pasword: x }\n  c3: { connector: demoo }\n"
                 "settings:\n  jsonata-engine: fastest\n  telemetry: { exporter: console }\n  custom: 1\n",
    "other.yaml": "hello: world\n",
}


def test_every_problem_is_reported_at_once(write, vocabulary) -> None:
    """One check_project call finds every kind of mistake in every file, each at its position."""
    for path, text in BAD_PROJECT.items():
        write(path, text)
    write("tests/ignored.yaml", "not: [valid\n")
    write(".hidden/ignored.yaml", "not: [valid\n")
    assert [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})] == EXPECTED
    with pytest.raises(FlowErrors) as info:
        load_project(".", vocabulary=vocabulary, environ={})
    assert len(info.value.errors) == len(EXPECTED)


#: A flow with a wrong parameter type, an unknown flow-ref target and an unknown property.
ONE_FILE = ("flow: a\nsteps:\n  - demo.echo: { message: '${greeting}', count: x }\n"
            "  - flow-ref: elsewhere\n  - log: '${nope}'\n")


def test_check_file_checks_one_file_with_its_properties(write, vocabulary) -> None:
    """A single file is checked on its own, with the property files above it."""
    write("config/dev.yaml", "greeting: hi\n")
    write("flows/a.yaml", ONE_FILE)
    problems = [e.format() for e in check_file("flows/a.yaml", vocabulary=vocabulary, environ={})]
    assert problems == ["flows/a.yaml:3:49: 'count' must be an integer, got string",
                        "flows/a.yaml:5:11: unknown property 'nope', expected it in a property file, "
                        "or environment variable NOPE"]
    assert [e.format() for e in check_file("flows/none.yaml", vocabulary=vocabulary, environ={})] == [
        "flows/none.yaml:1:1: cannot read file: No such file or directory"]


def _project(write, flow: str, connections: str = "") -> None:
    write("f.yaml", flow)
    if connections:
        write("c.yaml", "connections:\n" + connections)


def test_connection_is_optional_with_exactly_one(write, vocabulary) -> None:
    """One connection of the connector: steps may leave 'connection' out; it stays None in the model."""
    _project(write, "flow: a\nsteps:\n  - demo.echo: { message: hi }\n",
             "  only: { connector: demo, url: http://x }\n")
    step = load_project(".", vocabulary=vocabulary, environ={}).flows["a"].steps[0]
    assert isinstance(step, OperationStep)
    assert (step.connection, dict(step.params), step.connector, step.operation) == (None, {"message": "hi"},
                                                                                    "demo", "echo")


def test_connection_is_required_with_several(write, vocabulary) -> None:
    """Two connections of the connector: the step must name one."""
    _project(write, "flow: a\nsteps:\n  - demo.echo: { message: hi }\n",
             "  a: { connector: demo, url: http://x }\n  b: { connector: demo, url: http://y }\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == ["f.yaml:3:5: demo.echo needs 'connection': several 'demo' connections exist, "
                        "expected one of: a, b"]


def test_connection_defined_twice(write, vocabulary) -> None:
    """The same connection name in two config files is an error at the second."""
    write("c1.yaml", "connections:\n  a: { connector: demo, url: http://x }\n")
    write("c2.yaml", "connections:\n  a: { connector: demo, url: http://y }\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == ["c2.yaml:2:3: connection 'a' is defined twice (first at c1.yaml:2:3), expected unique names"]


def test_settings_are_read(write, vocabulary) -> None:
    """Known settings fill Settings; unknown ones land in extra."""
    write("s.yaml", "settings:\n  jsonata-engine: jsonata-python\n  telemetry: { exporter: otlp, endpoint: http://c }\n"
                    "  store: postgresql://db/splice\n  server: { port: 8080 }\n  team: blue\n")
    project = load_project(".", vocabulary=vocabulary, environ={})
    settings = project.settings
    assert (settings.jsonata_engine, settings.telemetry_exporter, settings.otlp_endpoint, settings.store_url) == (
        "jsonata-python", "otlp", "http://c", "postgresql://db/splice")
    assert dict(settings.server) == {"port": 8080} and dict(settings.extra) == {"team": "blue"}
    assert project.functions["double"](2) == 4


def test_triggers_and_retry_policies_are_built(vocabulary) -> None:
    """Durations become seconds; a plugin trigger keeps its connection apart from its params."""
    flow = load_flow_text(
        "flow: a\ntrigger:\n  demo.ticks: { connection: c, interval: 5 }\nsteps:\n  - log: x\n"
        "on-error:\n  - when: quickbooks:validation\n    retry: { attempts: 2, backoff: fixed, initial-delay: 250ms,"
        " max-delay: 1h, multiplier: 3, jitter: 0 }\n    then: dead-letter\n",
        vocabulary=vocabulary, environ={})
    assert flow.trigger is not None
    assert (flow.trigger.name, dict(flow.trigger.params), flow.trigger.connection) == (
        "demo.ticks", {"interval": 5}, "c")
    handler = flow.on_error[0]
    assert handler.types == ("QUICKBOOKS:VALIDATION",) and handler.action == "dead-letter"
    assert handler.retry is not None
    assert (handler.retry.attempts, handler.retry.backoff, handler.retry.initial_delay, handler.retry.max_delay,
            handler.retry.multiplier, handler.retry.jitter) == (2, "fixed", 0.25, 3600.0, 3.0, 0.0)


#: A flow with an expression where a value is needed at load time.
EXPRESSION_AT_LOAD = "flow: a\nsteps:\n  - log: x\non-error:\n  - when: '#[ payload.t ]'\n"


def test_expressions_are_refused_where_values_are_needed_at_load(vocabulary) -> None:
    """Error types, actions and flow names cannot be #[ ] expressions."""
    with pytest.raises(FlowErrors) as info:
        load_flow_text(EXPRESSION_AT_LOAD, file="f.yaml", vocabulary=vocabulary, environ={})
    assert str(info.value) == ("f.yaml:5:11: 'when' cannot hold a #[ ] expression, "
                               "expected a fixed value (it is needed before any message exists)")


#: Steps whose whole value is one #[ ] expression, where the step's shape is needed at load.
WHOLE_STEP_EXPRESSIONS = ("flow: a\nsteps:\n  - set-variable: '#[ x ]'\n"
                          "  - demo.echo: '#[ payload ]'\n  - choice: '#[ x ]'\n")


def test_a_step_whose_shape_is_an_expression_is_a_problem_not_a_crash(vocabulary) -> None:
    """A step's own mapping (an operation's parameters, set-variable's name and value) is read when
    the flow loads: one #[ ] expression in its place is reported at its position."""
    with pytest.raises(FlowErrors) as info:
        load_flow_text(WHOLE_STEP_EXPRESSIONS, file="f.yaml", vocabulary=vocabulary, environ={})
    fixed = "cannot hold a #[ ] expression, expected a fixed value (it is needed before any message exists)"
    assert str(info.value).splitlines() == [
        f"f.yaml:3:19: 'set-variable' {fixed}",
        f"f.yaml:4:16: 'demo.echo' {fixed}",
        "f.yaml:5:13: 'choice' must be a non-empty list of branches, expected '- when: \"#[ ... ]\"' "
        "items with 'steps:', and an optional '- otherwise:' last",
    ]


def test_http_listener_defaults(vocabulary) -> None:
    """The HTTP trigger's check fixes its method to POST when none is given."""
    flow = load_flow_text("flow: a\ntrigger:\n  http.listener: { path: /orders }\nsteps:\n  - log: x\n",
                          vocabulary=vocabulary, environ={})
    assert flow.trigger is not None and dict(flow.trigger.params) == {"path": "/orders", "method": "POST"}


#: A flow with a schedule trigger of the given parameters.
SCHEDULE_FLOW = "flow: a\ntrigger:\n  schedule: {{ {params} }}\nsteps:\n  - log: x\n"
CRON_EXPECTED = ("expected five fields (minute hour day-of-month month day-of-week), e.g. "
                 "'0 2 * * *'")
#: Wrong schedule parameters and the problem each one is reported as.
BAD_SCHEDULES = [
    ('cron: "0 2 * * *", catch-up: "true"', "f.yaml:3:44: 'catch-up' must be a boolean, got string"),
    ('cron: "0 2 * * *", catch-up: "#[ true ]"', "f.yaml:3:44: 'catch-up' cannot hold a #[ ] "
     "expression, expected a fixed value (it is needed before any message exists)"),
    ('cron: "0 2 * * *", catchup: true', "f.yaml:3:34: unknown parameter 'catchup' of schedule "
     "(did you mean 'catch-up'?)"),
    ('cron: "0 2 * *"', "f.yaml:3:21: invalid cron expression '0 2 * *': Exactly 5, 6 or 7 columns "
     "has to be specified for iterator expression, " + CRON_EXPECTED),
    ('cron: "61 2 * * *"', "f.yaml:3:21: invalid cron expression '61 2 * * *': [61 2 * * *] is not "
     "acceptable, out of range, " + CRON_EXPECTED),
    ('cron: "0 2 30 2 *"', "f.yaml:3:21: invalid cron expression '0 2 30 2 *': failed to find next "
     "date, " + CRON_EXPECTED),
    ('cron: "0 2 * * *", timezone: Mars/Base', "f.yaml:3:44: unknown timezone 'Mars/Base', expected "
     "an IANA time zone such as UTC or Europe/Berlin"),
    ("every: 5m, timezone: Europe/Nowhere", "f.yaml:3:36: unknown timezone 'Europe/Nowhere', expected "
     "an IANA time zone such as UTC or Europe/Berlin"),
]


def test_schedule_catch_up_option(vocabulary) -> None:
    """catch-up is a fixed boolean of the schedule trigger (cron or every); absent, it stays out."""
    def trigger(params: str) -> dict:
        flow = load_flow_text(SCHEDULE_FLOW.format(params=params), file="f.yaml", vocabulary=vocabulary,
                              environ={})
        assert flow.trigger is not None
        return dict(flow.trigger.params)

    assert trigger('cron: "0 2 * * *", timezone: UTC, catch-up: true') == {
        "cron": "0 2 * * *", "timezone": "UTC", "catch-up": True}
    assert trigger("every: 1h, catch-up: false") == {"every": 3600.0, "catch-up": False}
    assert trigger('cron: "0 2 * * *"') == {"cron": "0 2 * * *"}
    for params, problem in BAD_SCHEDULES:
        with pytest.raises(FlowErrors) as info:
            trigger(params)
        assert str(info.value) == problem


def test_a_cron_placeholder_is_checked_once_resolved(vocabulary) -> None:
    """A cron expression from a property is checked with its value (from the environment here),
    reported at the placeholder in the flow and named by it: the wrong value is elsewhere."""
    text = SCHEDULE_FLOW.format(params='cron: "${reconciliation.schedule}", timezone: UTC')
    flow = load_flow_text(text, file="f.yaml", vocabulary=vocabulary,
                          environ={"RECONCILIATION_SCHEDULE": "0 2 * * *"})
    assert flow.trigger is not None and flow.trigger.params["cron"] == "0 2 * * *"
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, file="f.yaml", vocabulary=vocabulary,
                       environ={"RECONCILIATION_SCHEDULE": "0 2 * *"})
    assert str(info.value) == (
        "f.yaml:3:21: invalid cron expression '0 2 * *': Exactly 5, 6 or 7 columns has to be "
        "specified for iterator expression (from ${reconciliation.schedule}), " + CRON_EXPECTED)


def test_a_trigger_check_reports_at_the_parameter(vocabulary) -> None:
    """A trigger declared with its own schema and check: the check's problems are reported where
    the parameter is, and parameters it leaves alone stay as written."""
    def path_rule(params: dict) -> list[ParamProblem]:
        path = params["path"]
        return [] if path.startswith("/") else [
            ParamProblem(f"invalid value {path!r} for 'path'", "a URL path starting with '/'", param="path")]

    vocabulary.sources["http.listener"] = {
        "type": "object", "additionalProperties": False,
        "properties": {"path": {"type": "string"}, "auth": {"type": "string"}}, "required": ["path"]}
    vocabulary.checks["http.listener"] = path_rule
    flow = load_flow_text("flow: a\ntrigger:\n  http.listener: { path: /o, auth: basic }\nsteps:\n  - log: x\n",
                          vocabulary=vocabulary, environ={})
    assert flow.trigger is not None and dict(flow.trigger.params) == {"path": "/o", "auth": "basic"}
    with pytest.raises(FlowErrors, match="f.yaml:3:26: invalid value 'o' for 'path', expected a URL path"):
        load_flow_text("flow: a\ntrigger:\n  http.listener: { path: o }\nsteps:\n  - log: x\n", file="f.yaml",
                       vocabulary=vocabulary, environ={})


def test_targets_labels_and_foreach_options(vocabulary) -> None:
    """Common step keys and foreach options reach the model."""
    flow = load_flow_text(
        "flow: a\nsteps:\n  - demo.echo: { message: hi }\n    label: say\n    target: said\n"
        "  - foreach:\n      collection: payload.items\n      concurrency: 4\n      item-var: it\n"
        "      on-item-error: continue\n      collect: false\n      steps: [ { log: x } ]\n",
        vocabulary=vocabulary, environ={})
    echo, foreach = flow.steps
    assert (echo.label, echo.target) == ("say", "said")
    assert (foreach.concurrency, foreach.item_var, foreach.index_var, foreach.on_item_error, foreach.collect) == (
        4, "it", "index", "continue", False)
    assert foreach.collection.single_expression is not None
    assert foreach.collection.single_expression.evaluate({"payload": {"items": [1, 2]}}) == [1, 2]


def test_choice_branches(vocabulary) -> None:
    """Branches keep their order and conditions; otherwise is separate."""
    flow = load_flow_text(
        "flow: a\nsteps:\n  - choice:\n      - when: \"#[ payload > 10 ]\"\n        steps: [ { log: big } ]\n"
        "      - when: payload > 5\n        steps: [ { log: mid } ]\n      - otherwise: [ { log: small } ]\n",
        vocabulary=vocabulary, environ={})
    choice = flow.steps[0]
    context = {"payload": 7, "vars": {}, "attributes": {}}
    assert [b.when.evaluate(context, context) for b in choice.branches] == [False, True]
    assert [s.message for s in choice.otherwise] == ["small"]


def test_continue_handler_payload(vocabulary) -> None:
    """A continue handler keeps its fallback payload and runs its steps first."""
    flow = load_flow_text(
        "flow: a\nsteps:\n  - log: x\non-error:\n  - when: ANY\n    steps: [ { log: { message: failed, "
        "level: error } } ]\n    then: continue\n    payload: { ok: false }\n",
        vocabulary=vocabulary, environ={})
    handler = flow.on_error[0]
    assert (handler.has_payload, handler.payload, handler.steps[0].level) == (True, {"ok": False}, "error")


def test_project_discovery_skips_support_directories(write, vocabulary) -> None:
    """.yml files count; config/, tests/, cassettes/, fixtures/ and dot-directories are not flows."""
    write("flows/a.yml", "flow: a\nsteps: [ { log: x } ]\n")
    for skipped in ("config/dev.yaml", "flows/tests/t.yaml", "cassettes/c.yaml", "tests/fixtures/f.yaml",
                    ".git/x.yaml", "flows/.cache/y.yaml"):
        write(skipped, "greeting: not a flow\n")
    project = load_project(".", vocabulary=vocabulary, environ={})
    assert list(project.flows) == ["a"] and project.flows["a"].file == "flows/a.yml"
    assert project.properties == {"greeting": "not a flow"}


#: A connection setting of the wrong type.
BAD_CONNECTION_SETTING = "connections:\n  main: { connector: demo, url: 42 }\n"


def test_a_bad_connection_setting_is_reported_once(write, vocabulary) -> None:
    """Steps using a connection with a wrong setting do not each report it as unknown."""
    write("splice.yaml", BAD_CONNECTION_SETTING)
    write("a.yaml", "flow: a\nsteps:\n  - demo.echo: { connection: main, message: hi }\n"
                    "  - demo.query: { connection: main, query: x }\n")
    problems = [p.format() for p in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == ["splice.yaml:2:33: 'url' must be a string, got integer"]
