"""The flow language: load YAML flows into a checked, compiled, positioned flow model.

``dsl`` reads files and strings; it runs nothing and imports neither ``runtime`` nor ``connectors``.
What a flow may call comes from a :class:`Vocabulary` (the runtime's plugin registry satisfies it).

Typical use::

    project = load_project("flows/", env="prod", vocabulary=registry)   # raises FlowErrors
    problems = check_project("flows/", vocabulary=registry)             # for `splice validate`
    params = render(step.params, payload=payload, attributes=attrs, vars=variables)
"""

from __future__ import annotations

from dsl.errors import FlowError, FlowErrors, FlowSyntaxError, FlowValidationError
from dsl.expressions import (
    CompiledExpression,
    ExpressionEvaluationError,
    JsonataEngine,
    compile_expression,
    get_engine,
)
from dsl.kinds import ParamProblem, StepKind
from dsl.model import Flow, Project, Template
from dsl.project import check_file, check_project, load_flow_text, load_project
from dsl.properties import SECURE_KEY_VAR, SecureValueError, decrypt_value, encrypt_value
from dsl.schema import flow_json_schema
from dsl.source import SourceSpan
from dsl.templates import DynamicDict, DynamicList, format_value, is_static, prepare_value, render
from dsl.values import parse_duration
from dsl.vocabulary import EmptyVocabulary, Vocabulary

__all__ = [
    "SECURE_KEY_VAR",
    "CompiledExpression",
    "DynamicDict",
    "DynamicList",
    "EmptyVocabulary",
    "ExpressionEvaluationError",
    "Flow",
    "FlowError",
    "FlowErrors",
    "FlowSyntaxError",
    "FlowValidationError",
    "JsonataEngine",
    "ParamProblem",
    "Project",
    "SecureValueError",
    "SourceSpan",
    "StepKind",
    "Template",
    "Vocabulary",
    "check_file",
    "check_project",
    "compile_expression",
    "decrypt_value",
    "encrypt_value",
    "flow_json_schema",
    "format_value",
    "get_engine",
    "is_static",
    "load_flow_text",
    "load_project",
    "parse_duration",
    "prepare_value",
    "render",
]
