"""``${...}`` placeholders and secure properties, resolved at load time."""

from __future__ import annotations

import pytest

from dsl import FlowErrors, check_project, decrypt_value, encrypt_value, load_flow_text, load_project, render
from dsl.properties import SecureValueError, env_var_name

FLOW = """flow: a
max-concurrency: ${workers}
steps:
  - demo.echo:
      message: "${greeting} from ${region:eu} to ${env:USER_NAME:nobody}"
      count: ${retries}
"""


def _params(flow):
    return flow.steps[0].params


def test_property_values_keep_their_yaml_type(vocabulary) -> None:
    """A scalar that is exactly one placeholder keeps the property's type; others interpolate."""
    flow = load_flow_text(FLOW, vocabulary=vocabulary, environ={},
                          properties={"greeting": "hello", "retries": 3, "workers": 2})
    assert _params(flow) == {"message": "hello from eu to nobody", "count": 3}
    assert flow.max_concurrency == 2


def test_environment_overrides_property_files(vocabulary) -> None:
    """``salesforce.client-id`` is overridden by ``SALESFORCE_CLIENT_ID``; numbers stay numbers."""
    environ = {"GREETING": "hi", "RETRIES": "5", "USER_NAME": "ann", "WORKERS": "3"}
    flow = load_flow_text(FLOW, vocabulary=vocabulary, environ=environ,
                          properties={"greeting": "hello", "retries": 3, "workers": 2})
    assert _params(flow) == {"message": "hi from eu to ann", "count": 5}
    assert env_var_name("salesforce.client-id") == "SALESFORCE_CLIENT_ID"


def test_quoting_a_placeholder_asks_for_a_string(vocabulary) -> None:
    """``"${n}"`` in quotes is the text of a numeric property, so string parameters accept it."""
    text = "flow: a\nsteps:\n  - demo.echo:\n      message: \"${realm}\"\n      count: ${realm}\n"
    flow = load_flow_text(text, vocabulary=vocabulary, environ={}, properties={"realm": 9130350604308576})
    assert _params(flow) == {"message": "9130350604308576", "count": 9130350604308576}


def test_nested_property_names_are_dotted(vocabulary) -> None:
    """Nested property names use dots; defaults may be empty, and a number default is a number."""
    text = "flow: a\nsteps:\n  - demo.echo:\n      message: ${demo.client-id}${none:}${price:1.50}\n      count: ${missing:7}\n"
    flow = load_flow_text(text, vocabulary=vocabulary, environ={}, properties={"demo": {"client-id": "x1"}})
    assert _params(flow) == {"message": "x11.50", "count": 7}


def test_dollar_dollar_escapes_a_placeholder(vocabulary) -> None:
    """``$${`` is a literal ``${``."""
    text = "flow: a\nsteps:\n  - demo.echo: { message: 'cost $${price} and $5' }\n"
    flow = load_flow_text(text, vocabulary=vocabulary, environ={})
    assert _params(flow) == {"message": "cost ${price} and $5"}


def test_placeholders_inside_expressions(vocabulary) -> None:
    """Inside ``#[ ]`` placeholders are replaced as text before the JSONata is compiled."""
    text = "flow: a\nsteps:\n  - demo.echo: { message: \"#[ payload.name & '${suffix}' ]\" }\n"
    flow = load_flow_text(text, vocabulary=vocabulary, environ={}, properties={"suffix": "!"})
    assert render(_params(flow), payload={"name": "Ann"}) == {"message": "Ann!"}


def test_unknown_property_is_positioned_with_a_hint(vocabulary) -> None:
    """The error points at the placeholder inside the scalar and suggests the close name."""
    text = "flow: a\nsteps:\n  - demo.echo: { message: 'Hi ${greting}' }\n"
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, file="a.yaml", vocabulary=vocabulary, environ={}, properties={"greeting": "x"})
    assert str(info.value) == ("a.yaml:3:31: unknown property 'greting' (did you mean 'greeting'?), "
                               "expected it in a property file, or environment variable GRETING")


def test_unset_environment_variable(vocabulary) -> None:
    """``${env:X}`` without a default needs X."""
    text = "flow: a\nsteps:\n  - demo.echo: { message: '${env:NOPE}' }\n"
    with pytest.raises(FlowErrors, match="environment variable 'NOPE' is not set"):
        load_flow_text(text, vocabulary=vocabulary, environ={})


def test_encrypt_decrypt_round_trip() -> None:
    """A passphrase and a raw Fernet key both work; the token is written as ![...]."""
    token = encrypt_value("s3cret", "my passphrase")
    assert token.startswith("![") and token.endswith("]") and "s3cret" not in token
    assert decrypt_value(token, "my passphrase") == "s3cret"
    raw = "bXktMzItYnl0ZS1mZXJuZXQta2V5LWZvci10ZXN0cyE="
    assert decrypt_value(encrypt_value("x", raw), raw) == "x"
    with pytest.raises(SecureValueError):
        decrypt_value(token, "other passphrase")
    with pytest.raises(SecureValueError, match="SPLICE_SECURE_KEY is not set"):
        decrypt_value(token, None)


def _secure_project(write, tmp_path, password: str) -> None:
    write("config/dev.yaml", f"demo:\n  password: '{encrypt_value(password, 'k1')}'\n  url: http://x\n")
    write("connections.yaml", "connections:\n  main:\n    connector: demo\n    url: ${demo.url}\n"
                              "    password: ${secure::demo.password}\n")


def test_secure_property_is_decrypted_and_reported(write, tmp_path, vocabulary) -> None:
    """The decrypted value reaches the connection and the on_secret callback."""
    _secure_project(write, tmp_path, "hunter2")
    seen: list[str] = []
    project = load_project(".", vocabulary=vocabulary, environ={"SPLICE_SECURE_KEY": "k1"},
                           on_secret=seen.append)
    assert project.connections["main"].params == {"url": "http://x", "password": "hunter2"}
    assert seen == ["hunter2"]
    assert "hunter2" not in repr(project.properties)


@pytest.mark.parametrize(("environ", "reason"), [({}, "SPLICE_SECURE_KEY is not set"),
                                                  ({"SPLICE_SECURE_KEY": "wrong"}, "SPLICE_SECURE_KEY does not match")])
def test_secure_property_errors_never_show_the_secret(write, tmp_path, vocabulary, environ, reason) -> None:
    """No key or a wrong key: a positioned error without ciphertext or plaintext."""
    _secure_project(write, tmp_path, "hunter2")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ=environ)]
    assert len(problems) == 1
    assert problems[0].startswith(f"connections.yaml:5:15: cannot decrypt secure property 'demo.password': {reason}")
    assert "hunter2" not in problems[0] and "![" not in problems[0]


def test_secure_placeholder_requires_an_encrypted_value(write, tmp_path, vocabulary) -> None:
    """``${secure::x}`` on a clear-text property is refused."""
    write("config/dev.yaml", "pw: plain\n")
    write("connections.yaml", "connections:\n  main: { connector: demo, url: x, password: '${secure::pw}' }\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == ["connections.yaml:2:47: secure property 'pw' is not encrypted, "
                        "expected a value written ![...] (use 'splice encrypt')"]


def test_property_files_merge_down_the_tree(write, tmp_path, vocabulary) -> None:
    """A subdirectory's config/<env>.yaml overrides the root's for the files below it."""
    write("config/prod.yaml", "greeting: root\nregion: us\n")
    write("team/config/prod.yaml", "greeting: team\n")
    write("a.yaml", "flow: a\nsteps:\n  - demo.echo: { message: '${greeting} ${region}', connection: c }\n")
    write("team/b.yaml", "flow: b\nsteps:\n  - demo.echo: { message: '${greeting} ${region}', connection: c }\n")
    write("conn.yaml", "connections:\n  c: { connector: demo, url: http://x }\n")
    project = load_project(".", env="prod", vocabulary=vocabulary, environ={})
    assert project.flows["a"].steps[0].params == {"message": "root us"}
    assert project.flows["b"].steps[0].params == {"message": "team us"}
    assert project.properties == {"greeting": "root", "region": "us"}
