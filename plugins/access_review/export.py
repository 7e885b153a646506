"""The Run History as a CSV download, for the console's Export and the API's: history_csv (the same rows and bytes as
`campaignkit access-review history --format csv`) streamed, its read transaction ended with the answer."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from .history import HistoryQuery, history_csv

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

TEXT_FILTER = Annotated[str | None, Query(max_length=320)]


def history_query(campaign_id: str, status: str | None, result: str | None, approver: str | None,
                  application: str | None, cycle: int | None, sort: str) -> HistoryQuery:
    """The whole filtered history, in the order the tab and `history` show it (no limit)."""
    return HistoryQuery(campaign_id, status=status or None, result=result or None, approver=approver or None,
                        application=application or None, cycle=cycle, sort=sort.lstrip("-") or "user",
                        descending=sort.startswith("-"), limit=None)


class ClosingStream(StreamingResponse):
    """A StreamingResponse that closes its generator once the answer ends, sent or cut off by the client, so that
    the read transaction it holds ends then; otherwise an abandoned download keeps it (and, on PostgreSQL, its
    snapshot) until the garbage collector happens to collect the generator."""

    def __init__(self, chunks: Generator[str], **options: Any) -> None:
        super().__init__(chunks, **options)
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await run_in_threadpool(self.chunks.close)


def csv_download(runtime: Runtime, query: HistoryQuery) -> StreamingResponse:
    """history_csv as a download, checked (CampaignkitError) before the answer starts; streamed a chunk at a time."""
    name = f"run-history-{query.campaign_id[:8]}{f'-cycle-{query.cycle}' if query.cycle is not None else ''}.csv"
    return ClosingStream(history_csv(runtime, query), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})
