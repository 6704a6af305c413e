"""The shipped project loads as sandbox mode and production need it to."""

from __future__ import annotations

import pytest

import dsl
from dsl.errors import FlowErrors
from runtime.registry import load_registry
from tests.support.flows import PROJECT

FLOWS = {"opportunity-to-invoice", "opportunity-to-estimate", "account-to-customer", "payment-to-salesforce",
         "payment-changes-to-salesforce", "invoice-status-to-opportunity", "nightly-reconciliation",
         "customer-360", "repair-payment-status", "invoice-headers", "invoice-delivery",
         "check-invoice-headers", "opportunity-cancellation", "customer-credit-to-account",
         "milestone-to-invoice", "invoice-status-to-milestone", "refund-to-opportunity",
         "refunds-of-customer"}


def test_dev_loads_without_any_credentials() -> None:
    """Sandbox mode loads the project before it fills in the emulators' settings."""
    project = dsl.load_project(PROJECT, vocabulary=load_registry(), env="dev", environ={})
    assert set(project.flows) == FLOWS
    assert set(project.connections) == {"salesforce", "quickbooks"}
    assert project.connections["salesforce"].connector == "salesforce"


def test_prod_requires_an_api_key_for_customer_360() -> None:
    """An empty key would let requests without one in: production refuses to start without it."""
    with pytest.raises(FlowErrors, match="customer-360.api-key"):
        dsl.load_project(PROJECT, vocabulary=load_registry(), env="prod", environ={})
    project = dsl.load_project(PROJECT, vocabulary=load_registry(), env="prod",
                               environ={"CUSTOMER_360_API_KEY": "k-123"})
    assert project.settings.server["policies"][0]["api-key"]["keys"] == ["k-123"]
