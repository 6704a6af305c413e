"""Splice's runtime: what connector plugins import, and what runs flows.

A connector plugin needs only the names exported here (specs, contexts, errors, the HTTP and OAuth
layers, the store protocol); :mod:`runtime.service` assembles a running project.
"""

from __future__ import annotations

from runtime.context import (
    ConnectionContext,
    HttpEndpoint,
    HttpRequest,
    HttpResponse,
    OperationContext,
    SourceContext,
)
from runtime.errors import (
    ConnectionConfigError,
    FlowExecutionError,
    HttpError,
    SpliceError,
    TransformError,
    error_matches,
    http_status_error,
    map_http_errors,
)
from runtime.hookspecs import hookimpl, hookspec
from runtime.limits import RateLimit, TokenBucket
from runtime.message import Event, Message, Outcome
from runtime.oauth import AccessToken, OAuth2Auth, StoredTokenSource
from runtime.redaction import redact, register_secret
from runtime.resources import RuntimeResources
from runtime.spec import (
    ConnectionSpec,
    Connector,
    OperationSpec,
    Param,
    ParamProblem,
    SandboxAction,
    SandboxSpec,
    SandboxTarget,
    SourceSpec,
    StepSpec,
    aiter_records,
    params_schema,
)
from runtime.steps import StepExecution
from runtime.store.base import ObjectStore
from runtime.transports import IDEMPOTENT_EXTENSION, RetryOptions, create_http_client

__all__ = [
    "IDEMPOTENT_EXTENSION",
    "AccessToken",
    "ConnectionConfigError",
    "ConnectionContext",
    "ConnectionSpec",
    "Connector",
    "Event",
    "FlowExecutionError",
    "HttpEndpoint",
    "HttpError",
    "HttpRequest",
    "HttpResponse",
    "Message",
    "OAuth2Auth",
    "ObjectStore",
    "OperationContext",
    "OperationSpec",
    "Outcome",
    "Param",
    "ParamProblem",
    "RateLimit",
    "RetryOptions",
    "RuntimeResources",
    "SandboxAction",
    "SandboxSpec",
    "SandboxTarget",
    "SourceContext",
    "SourceSpec",
    "SpliceError",
    "StepExecution",
    "StepSpec",
    "StoredTokenSource",
    "TokenBucket",
    "TransformError",
    "aiter_records",
    "create_http_client",
    "error_matches",
    "hookimpl",
    "hookspec",
    "http_status_error",
    "map_http_errors",
    "params_schema",
    "redact",
    "register_secret",
]
