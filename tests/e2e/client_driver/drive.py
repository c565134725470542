"""Drives a running Lunamail through a client generated from its OpenAPI document
(package ``lunamail_client``, made by the test beside this folder): create a list, import a
CSV, create and send a campaign, read the report.  Type-checked with ``mypy --strict``
before it runs, so it also proves the generated client is usable with types.

Usage: python drive.py BASE_URL API_KEY CSV_FILE; prints the final report as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TypeVar

from lunamail_client import AuthenticatedClient
from lunamail_client.api.campaigns import create_campaign, send_campaign
from lunamail_client.api.domains import add_domain
from lunamail_client.api.imports import create_import, get_import, start_import
from lunamail_client.api.lists import create_list
from lunamail_client.api.reports import get_report
from lunamail_client.models import (
    CampaignCreate,
    CampaignOut,
    CampaignSendOut,
    DomainCreate,
    ErrorResponse,
    FieldIn,
    FieldInType,
    ImportCreate,
    ImportOut,
    ListCreate,
    ListOut,
    ReportOut,
    SendingDomainOut,
)

T = TypeVar("T")
HTML = (
    "<p>Hello {{ subscriber.name }} from {{ subscriber.fields.city }}</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)
PATIENCE = 600  # polls of 0.1 s at most (bounded, not a timing assertion)


def ok(result: T | ErrorResponse | None, what: str) -> T:
    if result is None or isinstance(result, ErrorResponse):
        raise SystemExit(f"{what} failed: {result}")
    return result


def main(base: str, key: str, csv_file: Path) -> int:
    client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    with client as api:
        field = FieldIn(name="city", type_=FieldInType.TEXT)
        lst = ok(create_list.sync(client=api, body=ListCreate(name="Readers", fields=[field])), "create list")
        assert isinstance(lst, ListOut)

        declared = ok(create_import.sync(client=api, body=ImportCreate(list_=lst.id)), "declare import")
        assert isinstance(declared, ImportOut) and declared.upload
        put = api.get_httpx_client().put(declared.upload.url, content=csv_file.read_bytes(),
                                         headers={"Content-Type": "text/csv"})
        put.raise_for_status()
        job = ok(start_import.sync(declared.id, client=api), "start import")
        for _ in range(PATIENCE):
            job = ok(get_import.sync(declared.id, client=api), "get import")
            if job.status != "running":
                break
            time.sleep(0.1)
        assert job.status == "completed", job

        domain = ok(add_domain.sync(client=api, body=DomainCreate(domain="sender.example.org")), "add domain")
        assert isinstance(domain, SendingDomainOut) and domain.state == "pending"
        draft = CampaignCreate(name="Generated", subject="Hi {{ subscriber.name }}", from_name="Luna",
                               from_email="news@sender.example.org", html=HTML, lists=[lst.id])
        made = ok(create_campaign.sync(client=api, body=draft), "create campaign")
        assert isinstance(made, CampaignOut)
        started = ok(send_campaign.sync(made.id, client=api), "send")
        assert isinstance(started, CampaignSendOut)

        report: ReportOut | None = None
        for _ in range(PATIENCE):
            report = ok(get_report.sync(made.id, client=api), "report")
            if report.campaign_status == "sent" and report.status == "sent":
                break
            time.sleep(0.1)
        assert report is not None
        print(json.dumps({
            "campaign": made.id, "audience_size": started.audience_size, "imported": job.imported,
            "status": report.campaign_status, "sent": report.sent, "failed": report.failed,
            "planned": report.planned, "started_at": report.started_at.isoformat() if report.started_at else None,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
