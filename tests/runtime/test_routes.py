"""The server's route table refuses what ``splice validate`` reports: one route claimed twice."""

from __future__ import annotations

import pytest

from runtime.context import HttpRequest, HttpResponse
from runtime.routes import RouteConflictError, RouteTable


async def _endpoint(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, {})


def test_templates_that_differ_only_in_names_or_a_trailing_slash_are_one_route() -> None:
    table = RouteTable()
    table.add("/orders/{id}", ["GET"], _endpoint, owner="orders")
    with pytest.raises(RouteConflictError, match=r"\['GET'\] /orders/\{orderId\}/ \(as /orders/\{id\}\) "
                                                 "is claimed by both 'orders' and 'orders2'"):
        table.add("/orders/{orderId}/", ["get"], _endpoint, owner="orders2")
    table.add("/orders/{id}", ["POST"], _endpoint, owner="create")
    table.add("/orders/{id}/lines", ["GET"], _endpoint, owner="lines")
    assert [route.owner for route in table] == ["orders", "create", "lines"]
    route, params, _ = table.match("GET", "/orders/7/")
    assert route is not None and route.owner == "orders" and params == {"id": "7"}


def test_a_literal_path_is_not_hidden_by_a_template_that_started_first() -> None:
    """``/orders/summary`` and ``/orders/{id}`` are two routes (no conflict): each request goes to
    the most specific, whichever flow registered first."""
    table = RouteTable()
    table.add("/orders/{id}", ["GET"], _endpoint, owner="order")
    table.add("/orders/summary", ["GET"], _endpoint, owner="summary")
    assert table.match("GET", "/orders/summary")[0].owner == "summary"  # type: ignore[union-attr]
    assert table.match("GET", "/orders/7")[0].owner == "order"  # type: ignore[union-attr]
    table.remove_owner("summary")
    assert table.match("GET", "/orders/summary")[0].owner == "order"  # type: ignore[union-attr]
