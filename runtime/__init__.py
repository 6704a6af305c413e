"""Splice's runtime: what connector plugins import, and what runs flows.

A connector plugin imports only the names exported here, always as ``from runtime import ...``:
specs and typed parameters, the contexts it is handed (with ``once`` for exactly-once effects and
``inbox`` for durable inboxes), errors, the HTTP and OAuth layers, the store protocol, redaction and
JSON helpers. ``tests/test_connector_contract.py`` holds every module under ``connectors/`` to that,
and docs/writing-a-connector.md describes each name. :mod:`runtime.service` assembles a running
project.
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
from runtime.jsonutil import dumps as json_dumps
from runtime.jsonutil import dumps_bytes as json_dumps_bytes
from runtime.jsonutil import loads as json_loads
from runtime.limits import BudgetFactory, RateLimit, TokenBucket, local_budget
from runtime.message import Event, Message, Outcome
from runtime.oauth import AccessToken, OAuth2Auth, StoredTokenSource, TokenFetcher
from runtime.preview import DRY_RUN_ID
from runtime.probes import AuthProbe
from runtime.redaction import redact, redact_mapping, register_secret
from runtime.resources import RuntimeResources
from runtime.retry import backoff_delay, parse_retry_after
from runtime.spec import (
    BatchCall,
    BatchForm,
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
    materialize,
    params_schema,
)
from runtime.steps import StepExecution
from runtime.store import open_store
from runtime.store.base import ObjectStore
from runtime.store.inbox import Inbox, InboxItem
from runtime.transports import (
    IDEMPOTENT_EXTENSION,
    UNLIMITED_EXTENSION,
    RetryOptions,
    create_http_client,
)

__all__ = [
    "DRY_RUN_ID",
    "IDEMPOTENT_EXTENSION",
    "UNLIMITED_EXTENSION",
    "AccessToken",
    "AuthProbe",
    "BatchCall",
    "BatchForm",
    "BudgetFactory",
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
    "Inbox",
    "InboxItem",
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
    "TokenFetcher",
    "TransformError",
    "aiter_records",
    "backoff_delay",
    "create_http_client",
    "error_matches",
    "hookimpl",
    "hookspec",
    "http_status_error",
    "json_dumps",
    "json_dumps_bytes",
    "json_loads",
    "local_budget",
    "map_http_errors",
    "materialize",
    "open_store",
    "params_schema",
    "parse_retry_after",
    "redact",
    "redact_mapping",
    "register_secret",
]
