"""Echoes of own writes on a polled trigger: skipped, and never at the cost of somebody's change."""

from __future__ import annotations

from connectors.salesforce.echoes import EchoFilter, OwnWrites

HANDLED = {"Id": "006A", "Name": "Deal", "Amount": 240.0, "StageName": "Closed Won",
           "QuickBooks_Invoice_Id__c": None, "NextStep": None,
           "SystemModstamp": "2026-03-01T10:00:00.000+0000", "LastModifiedById": "005H"}


def _filter() -> tuple[OwnWrites, EchoFilter]:
    writes = OwnWrites()
    echoes = EchoFilter(writes, "Opportunity")
    echoes.remember(HANDLED)
    return writes, echoes


def test_a_record_changed_only_by_the_own_write_is_an_echo() -> None:
    """The write-back (numbers sent as int come back as float, "" as null) is all that changed."""
    writes, echoes = _filter()
    writes.record("Opportunity", "006A", {"QuickBooks_Invoice_Id__c": "17", "Amount_Paid__c": 0,
                                          "NextStep": ""})
    polled = {**HANDLED, "QuickBooks_Invoice_Id__c": "17", "SystemModstamp": "2026-03-01T10:00:05.000+0000",
              "LastModifiedById": "005I"}
    assert echoes.is_echo(polled)


def test_a_change_by_somebody_else_in_the_same_interval_is_not_an_echo() -> None:
    """Somebody edits the amount, then the write-back lands before the next poll: the poll sees
    both, and hands the record over (skipping it would lose the edit)."""
    writes, echoes = _filter()
    writes.record("Opportunity", "006A", {"QuickBooks_Invoice_Id__c": "17"})
    polled = {**HANDLED, "QuickBooks_Invoice_Id__c": "17", "Amount": 360.0}
    assert not echoes.is_echo(polled)
    # A field the connection wrote, changed by somebody else to another value: not an echo either.
    assert not echoes.is_echo({**HANDLED, "QuickBooks_Invoice_Id__c": "99"})


def test_without_an_own_write_or_a_handled_state_nothing_is_an_echo() -> None:
    """A record never handled here (a restart) or never written by this connection is handed over."""
    writes, echoes = _filter()
    assert not echoes.is_echo(HANDLED)
    writes.record("Opportunity", "006B", {"QuickBooks_Invoice_Id__c": "18"})
    assert not echoes.is_echo({**HANDLED, "Id": "006B", "QuickBooks_Invoice_Id__c": "18"})
    writes.record("Account", "006A", {"QuickBooks_Invoice_Id__c": "17"})  # another object's write
    assert not echoes.is_echo({**HANDLED, "QuickBooks_Invoice_Id__c": "17"})
