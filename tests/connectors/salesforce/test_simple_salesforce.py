"""Fidelity: the real ``simple-salesforce`` client against the emulator over HTTPS.

simple-salesforce always speaks HTTPS to ``instance_url``'s host, so the emulator runs under uvicorn
in a thread with a throwaway self-signed certificate that the client's ``requests`` session trusts.
Nothing in the emulator knows which client is calling.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.salesforce.emulator import create_app

pytestmark = pytest.mark.slow


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, str, Path]]:
    """(app, https base URL, CA file): the emulator under uvicorn with TLS on a free port."""
    cert, key = _self_signed(tmp_path)
    app = create_app(page_size=3)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, ssl_certfile=str(cert), ssl_keyfile=str(key), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield app, f"https://127.0.0.1:{port}", cert
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def test_simple_salesforce_round_trip(served: tuple[Any, str, Path]) -> None:
    """Query with paging, create, update, upsert, collections and errors, as the client expects them."""
    app, base, cert = served
    session = requests.Session()
    session.trust_env = False  # the CA bundle from the environment would override verify=
    session.verify = str(cert)
    token = session.post(f"{base}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "ss-client", "client_secret": "ss-secret"}).json()
    sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="66.0",
                    session=session)

    created = sf.Account.create({"Name": "Acme", "QB_Customer_Id__c": "58"})
    assert created["success"] and created["id"].startswith("001")
    assert sf.Account.update(created["id"], {"Phone": "555-0100"}) == 204
    assert sf.Account.upsert("QB_Customer_Id__c/58", {"Website": "acme.example"}) == 200
    assert sf.Account.upsert("QB_Customer_Id__c/59", {"Name": "Globex"}) == 201
    fetched = sf.Account.get_by_custom_id("QB_Customer_Id__c", "58")
    assert fetched["Phone"] == "555-0100" and fetched["Website"] == "acme.example"

    results = sf.restful("composite/sobjects", method="POST", json={
        "allOrNone": False,
        "records": [{"attributes": {"type": "Contact"}, "LastName": f"L{i}", "AccountId": created["id"]}
                    for i in range(8)]})
    assert [r["success"] for r in results] == [True] * 8

    everything = sf.query_all("SELECT Id, LastName, Account.Name FROM Contact ORDER BY LastName")
    assert everything["totalSize"] == 8 and len(everything["records"]) == 8
    assert everything["records"][0]["Account"]["Name"] == "Acme"
    first = sf.query("SELECT Id FROM Contact")
    assert first["done"] is False and first["nextRecordsUrl"].startswith("/services/data/v66.0/query/")
    more = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(more["records"]) == 3

    assert sf.Account.describe()["fields"] and "Account" in {o["name"] for o in sf.describe()["sobjects"]}
    assert sf.limits()["DailyApiRequests"]["Max"] == app.state.emulator.faults.daily_limit
    csv_pages = list(sf.bulk2.Contact.query("SELECT Id, LastName FROM Contact", max_records=5, wait=0.01))
    assert sum(len(page.splitlines()) - 1 for page in csv_pages) == 8 and len(csv_pages) == 2

    assert sf.Contact.delete(results[0]["id"]) == 204
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 7
    assert sf.api_usage["api-usage"].total == app.state.emulator.faults.daily_limit
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Id FRM Contact")


class _ToEmulator(HTTPAdapter):
    """Sends requests for Salesforce's login hosts to the emulator (a test-side transport adapter)."""

    def __init__(self, netloc: str) -> None:
        super().__init__()
        self.netloc = netloc

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        request.url = urlunsplit(urlsplit(request.url)._replace(netloc=self.netloc))
        return super().send(request, *args, **kwargs)


def test_simple_salesforce_logins_and_expired_session(served: tuple[Any, str, Path]) -> None:
    """simple-salesforce's own JWT and client-credentials logins work, and it recovers a 401."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    app, base, cert = served
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    app.state.emulator.options.jwt_public_keys = {"jwt-app": public}
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    adapter = _ToEmulator(urlsplit(base).netloc)
    session.mount("https://login.salesforce.com", adapter)
    session.mount("https://acme.my.salesforce.com", adapter)

    jwt_sf = Salesforce(username="integration@example.com", consumer_key="jwt-app", privatekey=pem,
                        version="66.0", session=session)
    assert jwt_sf.Account.create({"Name": "Via JWT"})["success"]

    cc_sf = Salesforce(consumer_key="cc-app", consumer_secret="cc-secret", domain="acme.my", version="66.0",
                       session=session)
    app.state.emulator.expire_tokens()
    assert cc_sf.query("SELECT Name FROM Account")["totalSize"] == 1  # 401 -> login again -> retry


def test_what_salesforce_refuses_simple_salesforce_sees_refused(served: tuple[Any, str, Path]) -> None:
    """An unknown API version is 404; an upsert with its external id in the body is 400; Amount of
    an opportunity with products is the line items' roll-up, refused as a write; line totals are
    decimal, half up (14.5 x 128.35 = 1861.08, never the binary-float 1861.07)."""
    from simple_salesforce.exceptions import SalesforceResourceNotFound

    app, base, cert = served
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    token = session.post(f"{base}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "ss-client", "client_secret": "ss-secret"}).json()

    def client(version: str) -> Salesforce:
        return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                          version=version, session=session)

    with pytest.raises(SalesforceResourceNotFound):
        client("99.0").query("SELECT Id FROM Account")
    assert client("59.0").query("SELECT Id FROM Account")["done"] is True  # simple-salesforce's default
    sf = client("66.0")

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Account.upsert("QB_Customer_Id__c/61", {"Name": "Initrode", "QB_Customer_Id__c": "61"})
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert sf.Account.upsert("QB_Customer_Id__c/61", {"Name": "Initrode"}) == 201

    account = sf.Account.create({"Name": "Decimal Corp"})["id"]
    product = sf.Product2.create({"Name": "Sensor"})["id"]
    org = app.state.emulator.org
    entry = sf.PricebookEntry.create({"Pricebook2Id": org.standard_pricebook, "Product2Id": product,
                                      "UnitPrice": 14.5})["id"]
    opportunity = sf.Opportunity.create({"Name": "Sensors", "AccountId": account, "StageName": "Prospecting",
                                         "CloseDate": "2026-03-31", "Amount": 10})["id"]
    assert sf.Opportunity.update(opportunity, {"Amount": 20}) == 204  # no products yet: writable
    sf.OpportunityLineItem.create({"OpportunityId": opportunity, "PricebookEntryId": entry,
                                   "Quantity": 128.35, "UnitPrice": 14.5})
    [line] = sf.query(f"SELECT TotalPrice FROM OpportunityLineItem WHERE OpportunityId = '{opportunity}'")["records"]
    assert line["TotalPrice"] == 1861.08
    assert sf.Opportunity.get(opportunity)["Amount"] == 1861.08
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Opportunity.update(opportunity, {"Amount": 1900})
    assert refused.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert sf.Opportunity.update(opportunity, {"StageName": "Closed Won"}) == 204


def _client(base: str, cert: Path) -> Salesforce:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    token = session.post(f"{base}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "ss-client", "client_secret": "ss-secret"}).json()
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="66.0",
                      session=session)


class _SteppedClock:
    """The emulator org's clock, moved on by the test (replication windows are whole minutes)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now_value = start

    def now(self) -> dt.datetime:
        return self.now_value


def test_updated_and_deleted_ids_as_the_replication_api_reports_them(
        served: tuple[Any, str, Path]) -> None:
    app, base, cert = served
    sf = _client(base, cert)
    org = app.state.emulator.org
    start = dt.datetime(2026, 11, 30, 9, 0, 20, tzinfo=dt.UTC)
    clock = org.clock = _SteppedClock(start)
    kept = sf.Account.create({"Name": "Kept"})["id"]
    gone = sf.Account.create({"Name": "Gone"})["id"]
    clock.now_value = start + dt.timedelta(minutes=3)
    sf.Account.delete(gone)
    clock.now_value = start + dt.timedelta(minutes=6)

    updated = sf.Account.updated(start - dt.timedelta(minutes=1), start + dt.timedelta(minutes=5))
    assert updated["ids"] == [kept]  # a deleted record is not an updated one
    assert updated["latestDateCovered"].startswith("2026-11-30T09:05:00")
    deleted = sf.Account.deleted(start, start + dt.timedelta(minutes=5))
    assert [d["id"] for d in deleted["deletedRecords"]] == [gone]
    assert deleted["earliestDateAvailable"] and deleted["latestDateCovered"]
    assert sf.Account.deleted(start, start + dt.timedelta(minutes=2))["deletedRecords"] == []

    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Account.updated(start, start + dt.timedelta(seconds=30))  # under a minute
    assert refused.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Account.deleted(start - dt.timedelta(days=16), start)  # beyond the recycle bin's 15 days
    assert refused.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_composite_runs_subrequests_in_order_with_references_and_all_or_none(
        served: tuple[Any, str, Path]) -> None:
    app, base, cert = served
    sf = _client(base, cert)
    done = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Account", "referenceId": "refAccount",
         "body": {"Name": "Composite Co"}},
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "refContact",
         "body": {"LastName": "Doe", "AccountId": "@{refAccount.id}"}},
        {"method": "GET", "url": "/services/data/v66.0/query?q=SELECT+Id,+AccountId+FROM+Contact",
         "referenceId": "refQuery"},
        {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Account/@{refQuery.records[0].AccountId}",
         "referenceId": "refUpdate", "body": {"Phone": "555-0199"}}]})["compositeResponse"]
    assert [r["httpStatusCode"] for r in done] == [201, 201, 200, 204]
    account = done[0]["body"]["id"]
    assert done[0]["httpHeaders"]["Location"] == f"/services/data/v66.0/sobjects/Account/{account}"
    assert done[2]["body"]["records"][0]["AccountId"] == account
    assert sf.Account.get(account)["Phone"] == "555-0199"

    halted = sf.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Account", "referenceId": "refOk",
         "body": {"Name": "Rolled Back"}},
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "refBad",
         "body": {"FirstName": "No last name"}},
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Account", "referenceId": "refAfter",
         "body": {"Name": "Never"}}]})["compositeResponse"]
    assert [r["httpStatusCode"] for r in halted] == [400, 400, 400]
    assert halted[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert halted[0]["body"][0]["errorCode"] == halted[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert sf.query("SELECT Id FROM Account WHERE Name = 'Rolled Back'")["totalSize"] == 0

    partial = sf.restful("composite", method="POST", json={"allOrNone": False, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Contact", "referenceId": "refBad",
         "body": {"FirstName": "No last name"}},
        {"method": "PATCH", "url": "/services/data/v66.0/sobjects/Contact/@{refBad.id}",
         "referenceId": "refDependent", "body": {"LastName": "Late"}},
        {"method": "POST", "url": "/services/data/v66.0/sobjects/Account", "referenceId": "refFine",
         "body": {"Name": "Independent"}}]})["compositeResponse"]
    assert [r["httpStatusCode"] for r in partial] == [400, 400, 201]
    assert partial[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    with pytest.raises(SalesforceMalformedRequest):  # the envelope itself: nothing runs
        sf.restful("composite", method="POST", json={"compositeRequest": [
            {"method": "GET", "url": "/services/data/v66.0/limits", "referenceId": "same"},
            {"method": "GET", "url": "/services/data/v66.0/limits", "referenceId": "same"}]})


def test_bulk_ingest_jobs_through_simple_salesforce(served: tuple[Any, str, Path]) -> None:
    app, base, cert = served
    sf = _client(base, cert)
    [inserted] = sf.bulk2.Account.insert(records=[{"Name": "Bulk A", "QB_Customer_Id__c": "77"},
                                                  {"Name": "", "Phone": "555-0100"}], wait=0)
    assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"]) == (2, 1)
    failed = sf.bulk2.Account.get_failed_records(inserted["job_id"])
    assert "REQUIRED_FIELD_MISSING" in failed and "555-0100" in failed
    succeeded = sf.bulk2.Account.get_successful_records(inserted["job_id"])
    assert succeeded.splitlines()[0].startswith('"sf__Id","sf__Created"') or \
        succeeded.splitlines()[0].startswith("sf__Id,sf__Created")

    [upserted] = sf.bulk2.Account.upsert(records=[{"QB_Customer_Id__c": "77", "Phone": "555-0177"},
                                                  {"QB_Customer_Id__c": "78", "Name": "Bulk B"}],
                                         external_id_field="QB_Customer_Id__c", wait=0)
    assert (upserted["numberRecordsProcessed"], upserted["numberRecordsFailed"]) == (2, 0)
    rows = {r["QB_Customer_Id__c"]: r for r in sf.query(
        "SELECT Name, Phone, QB_Customer_Id__c FROM Account WHERE QB_Customer_Id__c != null")["records"]}
    assert rows["77"]["Name"] == "Bulk A" and rows["77"]["Phone"] == "555-0177"
    assert rows["78"]["Name"] == "Bulk B"


def test_compound_address_is_read_only_and_not_in_bulk_queries(served: tuple[Any, str, Path]) -> None:
    from simple_salesforce.exceptions import SalesforceBulkV2ExtractError

    app, base, cert = served
    sf = _client(base, cert)
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["BillingAddress"]["type"] == "address"
    assert not fields["BillingAddress"]["createable"] and not fields["BillingAddress"]["filterable"]
    assert fields["BillingCity"]["compoundFieldName"] == "BillingAddress"
    account = sf.Account.create({"Name": "Addressed", "BillingCity": "Denver",
                                 "BillingPostalCode": "80202"})["id"]
    [row] = sf.query(f"SELECT BillingAddress, ShippingAddress FROM Account WHERE Id = '{account}'")["records"]
    assert row["BillingAddress"]["city"] == "Denver" and row["BillingAddress"]["postalCode"] == "80202"
    assert row["ShippingAddress"] is None
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Account.update(account, {"BillingAddress": {"city": "Boston"}})
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises((SalesforceMalformedRequest, SalesforceBulkV2ExtractError)):
        list(sf.bulk2.Account.query("SELECT Id, BillingAddress FROM Account", wait=0.01))


def test_a_custom_object_through_simple_salesforce(served: tuple[Any, str, Path]) -> None:
    """Project_Milestone__c as the client's attribute access reaches a custom object: create,
    upsert by its external id, describe, and a query through its lookup."""
    _app, base, cert = served
    sf = _client(base, cert)
    account = sf.Account.create({"Name": "Milestone Co"})["id"]
    opp = sf.Opportunity.create({"Name": "Project", "AccountId": account, "StageName": "Closed Won",
                                 "CloseDate": "2026-04-20", "Bill_By_Milestone__c": True})["id"]
    milestone = sf.Project_Milestone__c.create({"Name": "Kickoff", "Opportunity__c": opp,
                                                "Amount__c": 1500, "Status__c": "Billable"})
    assert milestone["success"] and milestone["id"].startswith("a0M")
    assert sf.Project_Milestone__c.update(milestone["id"], {"QuickBooks_Invoice_Id__c": "41"}) == 204
    assert sf.Project_Milestone__c.upsert("QuickBooks_Invoice_Id__c/41", {"Payment_Status__c": "Paid"}) == 200
    described = sf.Project_Milestone__c.describe()
    assert described["custom"] is True and any(f["relationshipName"] == "Opportunity__r"
                                               for f in described["fields"])
    rows = sf.query("SELECT Name, Payment_Status__c, Opportunity__r.Account.Name FROM Project_Milestone__c "
                    f"WHERE Opportunity__c = '{opp}'")["records"]
    assert [(r["Name"], r["Payment_Status__c"], r["Opportunity__r"]["Account"]["Name"]) for r in rows] == [
        ("Kickoff", "Paid", "Milestone Co")]
