"""The sObjects the emulator knows, with the describe metadata clients read.

Compact field specs (``name, type, flags``) expand into describe field objects. Flags: ``c``
createable, ``u`` updateable, ``n`` nillable, ``x`` external id, ``q`` unique, ``d`` defaulted on
create. Custom ``__c`` fields not declared here are added on first write (type guessed from the
value), as if an admin had created them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ADDRESS_PARTS", "FieldDef", "MILESTONE_STATUSES", "ObjectDef", "STAGES", "build_schemas",
           "change_event_channel"]

#: StageName -> (IsClosed, IsWon, Probability, ForecastCategoryName): the default sales process.
STAGES: dict[str, tuple[bool, bool, int, str]] = {
    "Prospecting": (False, False, 10, "Pipeline"),
    "Qualification": (False, False, 10, "Pipeline"),
    "Needs Analysis": (False, False, 20, "Pipeline"),
    "Value Proposition": (False, False, 50, "Pipeline"),
    "Id. Decision Makers": (False, False, 60, "Pipeline"),
    "Perception Analysis": (False, False, 70, "Pipeline"),
    "Proposal/Price Quote": (False, False, 75, "Pipeline"),
    "Negotiation/Review": (False, False, 90, "Commit"),
    "Closed Won": (True, True, 100, "Closed"),
    "Closed Lost": (True, False, 0, "Omitted"),
}


#: Status__c of a Project_Milestone__c: the consulting firm's milestone lifecycle.
MILESTONE_STATUSES = ("Planned", "In Progress", "Complete", "Billable", "Cancelled")


def change_event_channel(obj: str) -> str:
    """The CDC channel of an object: ``/data/OpportunityChangeEvent``; a custom object's drops the
    ``c`` of ``__c`` (``/data/Project_Milestone__ChangeEvent``), as Salesforce names them."""
    return f"/data/{obj.removesuffix('__c') + '__' if obj.endswith('__c') else obj}ChangeEvent"


@dataclass(slots=True)
class FieldDef:
    """One field of an sObject."""

    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    defaulted: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    #: The compound field this one is a component of (``BillingAddress`` for ``BillingCity``).
    compound: str | None = None

    def describe(self) -> dict[str, Any]:
        """The describe ``fields[]`` entry."""
        return {
            "name": self.name, "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type, "soapType": _SOAP.get(self.type, "xsd:string"),
            "length": 255 if self.type in ("string", "picklist", "email", "phone", "url") else 0,
            "createable": self.createable, "updateable": self.updateable,
            "nillable": self.nillable, "externalId": self.external_id, "unique": self.unique,
            "idLookup": self.external_id or self.name == "Id", "custom": self.name.endswith("__c"),
            "calculated": (not self.createable and not self.updateable
                           and self.name != "Id" and self.type != "address"),
            "defaultedOnCreate": self.defaulted, "filterable": self.type != "address",
            "sortable": self.type != "address", "compoundFieldName": self.compound,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False}
                               for v in self.picklist],
        }


_SOAP = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "date": "xsd:date",
         "datetime": "xsd:dateTime", "currency": "xsd:double", "double": "xsd:double",
         "percent": "xsd:double", "int": "xsd:int", "address": "urn:address"}


@dataclass(slots=True)
class ObjectDef:
    """One sObject: key prefix, fields and child relationships."""

    name: str
    prefix: str
    fields: dict[str, FieldDef]
    #: child relationship name -> (child object, child's reference field)
    children: dict[str, tuple[str, str]] = field(default_factory=dict)
    by_lower: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_lower = {name.lower(): name for name in self.fields}

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup (SOQL and REST names are case-insensitive)."""
        canonical = self.by_lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    def add_field(self, definition: FieldDef) -> None:
        """Add a field (custom fields on first write)."""
        self.fields[definition.name] = definition
        self.by_lower[definition.name.lower()] = definition.name

    def parent(self, relationship: str) -> FieldDef | None:
        """The reference field whose relationship name is ``relationship`` (``Account``)."""
        for definition in self.fields.values():
            if definition.relationship_name and definition.relationship_name.lower() == relationship.lower():
                return definition
        return None

    def describe(self, api_version: str = "66.0") -> dict[str, Any]:
        """The ``sobjects/X/describe`` body."""
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        return {
            **self.summary(), "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [{"childSObject": child, "field": ref, "relationshipName": rel,
                                    "cascadeDelete": False}
                                   for rel, (child, ref) in self.children.items()],
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }

    def summary(self) -> dict[str, Any]:
        """The global describe entry."""
        return {"name": self.name, "label": self.name.removesuffix("__c").replace("_", " "),
                "keyPrefix": self.prefix, "custom": self.name.endswith("__c"),
                "createable": True, "updateable": True, "deletable": True, "queryable": True,
                "retrieveable": True, "searchable": True, "replicateable": True}


_SYSTEM = [("Id", "id", "-"), ("IsDeleted", "boolean", "d"), ("CreatedDate", "datetime", "d"),
           ("CreatedById", "reference:User:CreatedBy", "d"), ("LastModifiedDate", "datetime", "d"),
           ("LastModifiedById", "reference:User:LastModifiedBy", "d"), ("SystemModstamp", "datetime", "d")]
_OWNER = [("OwnerId", "reference:User:Owner", "cund")]


#: The components of a compound address: field suffix -> key in the compound value.
ADDRESS_PARTS = {"Street": "street", "City": "city", "State": "state", "PostalCode": "postalCode",
                 "Country": "country"}


def _address(prefix: str) -> list[tuple[str, str, str]]:
    """A compound address: its five writable components (``BillingStreet`` ... ``BillingCountry``)
    and the read-only compound (``BillingAddress``), which Salesforce fills from them."""
    kinds = {"Street": "textarea"}
    return [*((f"{prefix}{part}", kinds.get(part, "string"), "cun") for part in ADDRESS_PARTS),
            (f"{prefix}Address", "address", "-")]


_OBJECTS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "User": ("005", [("Name", "string", "cu"), ("Username", "string", "cuq"), ("Email", "email", "cu"),
                     ("IsActive", "boolean", "cud")]),
    "Account": ("001", [("Name", "string", "cu"), ("AccountNumber", "string", "cun"),
                        ("Type", "picklist", "cun"), ("Industry", "picklist", "cun"),
                        ("Phone", "phone", "cun"), ("Website", "url", "cun"),
                        ("Description", "textarea", "cun"), *_address("Billing"), *_address("Shipping"),
                        ("AnnualRevenue", "currency", "cun"), ("NumberOfEmployees", "int", "cun"),
                        ("ParentId", "reference:Account:Parent", "cun"), *_OWNER,
                        ("QB_Customer_Id__c", "string", "cunxq"), ("QB_Sync_Status__c", "string", "cun"),
                        ("QB_Last_Sync__c", "datetime", "cun"), ("Billing_Email__c", "email", "cun"),
                        ("Currency__c", "string", "cun"), ("Unapplied_Amount__c", "currency", "cun"),
                        ("QB_Customer_Ids__c", "string", "cun")]),
    "Contact": ("003", [("AccountId", "reference:Account:Account", "cun"), ("FirstName", "string", "cun"),
                        ("LastName", "string", "cu"), ("Name", "string", "-"), ("Email", "email", "cun"),
                        ("Phone", "phone", "cun"), ("Title", "string", "cun"), *_address("Mailing"), *_OWNER]),
    "Pricebook2": ("01s", [("Name", "string", "cu"), ("IsActive", "boolean", "cud"),
                           ("IsStandard", "boolean", "d"), ("Description", "textarea", "cun")]),
    "Product2": ("01t", [("Name", "string", "cu"), ("ProductCode", "string", "cun"),
                         ("Description", "textarea", "cun"), ("Family", "picklist", "cun"),
                         ("IsActive", "boolean", "cud"), ("QuantityUnitOfMeasure", "string", "cun"),
                         ("StockKeepingUnit", "string", "cun"), ("QB_Item_Id__c", "string", "cunxq")]),
    "PricebookEntry": ("01u", [("Pricebook2Id", "reference:Pricebook2:Pricebook2", "c"),
                               ("Product2Id", "reference:Product2:Product2", "c"),
                               ("UnitPrice", "currency", "cu"), ("IsActive", "boolean", "cud"),
                               ("UseStandardPrice", "boolean", "cud"), ("Name", "string", "-"),
                               ("ProductCode", "string", "-")]),
    "Opportunity": ("006", [("AccountId", "reference:Account:Account", "cun"), ("Name", "string", "cu"),
                            ("StageName", "picklist", "cu"), ("CloseDate", "date", "cu"),
                            ("Amount", "currency", "cun"), ("Probability", "percent", "cund"),
                            ("Type", "picklist", "cun"), ("LeadSource", "picklist", "cun"),
                            ("Description", "textarea", "cun"), ("NextStep", "string", "cun"),
                            ("ForecastCategoryName", "picklist", "cund"), ("IsClosed", "boolean", "d"),
                            ("IsWon", "boolean", "d"), ("Pricebook2Id", "reference:Pricebook2:Pricebook2", "cun"),
                            ("HasOpportunityLineItem", "boolean", "d"), *_OWNER,
                            ("QuickBooks_Invoice_Id__c", "string", "cunxq"),
                            ("QuickBooks_Invoice_Number__c", "string", "cun"),
                            ("QuickBooks_Invoice_Link__c", "url", "cun"),
                            ("Invoice_Status__c", "string", "cun"), ("Payment_Status__c", "picklist", "cun"),
                            ("Amount_Paid__c", "currency", "cun"), ("Balance_Due__c", "currency", "cun"),
                            ("Last_Payment_Date__c", "date", "cun"), ("QB_Sync_Error__c", "textarea", "cun"),
                            ("QB_SyncToken__c", "string", "cun"),
                            # Invoice headers (README "Invoice headers"): what the invoice.*
                            # properties of the shipped project name in the sandbox.
                            ("QB_Class__c", "string", "cun"), ("QB_Location__c", "string", "cun"),
                            ("PO_Number__c", "string", "cun"), ("Invoice_Memo__c", "textarea", "cun"),
                            ("Region__c", "string", "cun"),
                            ("Cancellation_Status__c", "picklist", "cun"),
                            ("QuickBooks_Credit_Memo_Id__c", "string", "cun"),
                            ("QuickBooks_Refund_Id__c", "string", "cun"),
                            ("Amount_Credited__c", "currency", "cun"), ("Amount_Refunded__c", "currency", "cun"),
                            ("Unapplied_Amount__c", "currency", "cun"),
                            # Billed milestone by milestone (Project_Milestone__c), never as a whole.
                            ("Bill_By_Milestone__c", "boolean", "cud"),
                            ("QuickBooks_Transaction_Type__c", "picklist", "cun"),
                            ("QuickBooks_Estimate_Id__c", "string", "cun"),
                            ("QuickBooks_Estimate_Number__c", "string", "cun")]),
    "OpportunityLineItem": ("00k", [("OpportunityId", "reference:Opportunity:Opportunity", "c"),
                                    ("PricebookEntryId", "reference:PricebookEntry:PricebookEntry", "cn"),
                                    ("Product2Id", "reference:Product2:Product2", "cnd"),
                                    ("Quantity", "double", "cu"), ("UnitPrice", "currency", "cund"),
                                    ("ListPrice", "currency", "n"), ("TotalPrice", "currency", "cund"),
                                    ("Discount", "percent", "cun"), ("Subtotal", "currency", "n"),
                                    ("Description", "string", "cun"), ("ServiceDate", "date", "cun"),
                                    ("SortOrder", "int", "cun"), ("ProductCode", "string", "n"),
                                    ("Name", "string", "n")]),
    # A custom object: a project's billable step, with a lookup to its opportunity and the
    # invoice and payment state the milestone flows write back.
    "Project_Milestone__c": ("a0M", [("Name", "string", "cu"), *_OWNER,
                                     ("Opportunity__c", "reference:Opportunity:Opportunity__r", "cun"),
                                     ("Amount__c", "currency", "cun"), ("Due_Date__c", "date", "cun"),
                                     ("Status__c", "picklist", "cun"),
                                     ("QuickBooks_Invoice_Id__c", "string", "cunxq"),
                                     ("QuickBooks_Invoice_Number__c", "string", "cun"),
                                     ("QuickBooks_Invoice_Link__c", "url", "cun"),
                                     ("Payment_Status__c", "picklist", "cun"),
                                     ("Amount_Paid__c", "currency", "cun"), ("Balance_Due__c", "currency", "cun"),
                                     ("Last_Payment_Date__c", "date", "cun"),
                                     ("QB_Sync_Error__c", "textarea", "cun")]),
}

_PICKLISTS = {("Opportunity", "StageName"): tuple(STAGES),
              ("Opportunity", "ForecastCategoryName"): ("Pipeline", "Best Case", "Commit", "Closed", "Omitted"),
              ("Opportunity", "Payment_Status__c"): ("Unpaid", "Partially Paid", "Paid", "Voided", "Deleted"),
              ("Opportunity", "Cancellation_Status__c"): ("Cancelled - Voided", "Cancelled - Credited",
                                                         "Cancelled - Refunded", "Cancelled - Flagged"),
              ("Project_Milestone__c", "Status__c"): MILESTONE_STATUSES,
              ("Project_Milestone__c", "Payment_Status__c"): ("Unpaid", "Partially Paid", "Paid", "Voided",
                                                              "Deleted"),
              ("Opportunity", "QuickBooks_Transaction_Type__c"): ("Invoice", "Sales Receipt", "Estimate")}


def _field(obj: str, name: str, kind: str, flags: str) -> FieldDef:
    reference_to = relationship = None
    if kind.startswith("reference:"):
        kind, reference_to, relationship = kind.split(":")
    nillable = "n" in flags or (flags in ("-", "d") and name != "Id") or kind == "boolean"
    return FieldDef(name=name, type=kind, createable="c" in flags, updateable="u" in flags,
                    nillable=nillable, external_id="x" in flags, unique="q" in flags or name == "Id",
                    defaulted="d" in flags or kind == "boolean", reference_to=reference_to,
                    relationship_name=relationship, picklist=_PICKLISTS.get((obj, name), ()))


def build_schemas() -> dict[str, ObjectDef]:
    """A fresh, mutable set of object definitions (custom fields get added per emulator)."""
    out: dict[str, ObjectDef] = {}
    for obj, (prefix, specs) in _OBJECTS.items():
        fields = [_field(obj, n, k, f) for n, k, f in _SYSTEM + specs]
        compounds = {f.name.removesuffix("Address") for f in fields if f.type == "address"}
        for f in fields:
            owner = next((c for c in compounds if f.name.startswith(c)
                          and f.name.removeprefix(c) in ADDRESS_PARTS), None)
            f.compound = f"{owner}Address" if owner is not None else None
        out[obj] = ObjectDef(obj, prefix, {f.name: f for f in fields})
    plural = {"Account": "Accounts", "Contact": "Contacts", "Opportunity": "Opportunities",
              "OpportunityLineItem": "OpportunityLineItems", "PricebookEntry": "PricebookEntries",
              "Project_Milestone__c": "Project_Milestones__r"}
    for obj, definition in out.items():
        for f in definition.fields.values():
            if f.reference_to in out and f.name not in ("CreatedById", "LastModifiedById", "OwnerId"):
                name = "ChildAccounts" if f.name == "ParentId" else plural.get(obj, obj + "s")
                out[f.reference_to].children[name] = (obj, f.name)
    return out
