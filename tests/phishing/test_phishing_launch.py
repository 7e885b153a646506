"""A launch writes one results row per recipient with the runs, batch by batch, without reading the runs back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from campaignkit.core.campaigns import launch
from campaignkit.core.db import reading
from campaignkit.core.db.schema import phishing_groups, phishing_results, runs

SIMULATION = """
name: Batches
kind: phishing
audience: {source: csv, path: %s}
settings:
  channel: file
  attacks: [{name: Parcel, template: email/phishing/parcel_notice, sender: "Parcel <p@parcel.test>"}]
  sending: {business_hours_only: false}
"""


def test_a_recipient_repeated_in_a_later_batch_keeps_one_run_and_one_results_row(
    make_runtime: Any, actor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import Harness

    monkeypatch.setattr(launch, "CHUNK", 2)  # ada's second row comes in the third batch
    harness = Harness(make_runtime(), actor, tmp_path)
    audience = harness.csv("email,name,groups\nada@example.org,Ada,Finance\nbob@example.org,Bob,Sales\n"
                           "cy@example.org,Cy,Sales;Finance\ndee@example.org,Dee,\nada@example.org,Ada L.,Legal\n")
    campaign_id = harness.create(SIMULATION % audience)
    harness.launch(campaign_id)
    with reading(harness.runtime.engine) as conn:
        run_ids = dict(conn.execute(select(runs.c.target_key, runs.c.id)).all())
        rows = {row.email: row for row in conn.execute(select(phishing_results))}
        groups = sorted(conn.execute(select(phishing_groups.c.group_name, phishing_groups.c.run_id)).all())
        tokens = conn.execute(select(func.count(func.distinct(phishing_results.c.token)))).scalar_one()
    assert sorted(rows) == sorted(run_ids) and tokens == 4
    assert all(rows[email].run_id == run_ids[email] for email in rows)
    assert (rows["ada@example.org"].name, rows["ada@example.org"].groups) == ("Ada", ["Finance"])  # the first row's
    assert groups == sorted([("Finance", run_ids["ada@example.org"]), ("Sales", run_ids["bob@example.org"]),
                             ("Finance", run_ids["cy@example.org"]), ("Sales", run_ids["cy@example.org"])])
