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


class HistoryFilters:
    """The Run History's filters and sort as a route's query (a FastAPI dependency, shared by the console's Export
    and the API's): the whole filtered history, in the order the tab and `history` show it (no limit)."""

    def __init__(self, status: TEXT_FILTER = None, result: TEXT_FILTER = None, approver: TEXT_FILTER = None,
                 application: TEXT_FILTER = None, cycle: int | None = None,
                 sort: Annotated[str, Query(max_length=40)] = "user") -> None:
        self.status, self.result, self.approver, self.application = status, result, approver, application
        self.cycle, self.sort = cycle, sort

    def query(self, campaign_id: str) -> HistoryQuery:
        return HistoryQuery(campaign_id, status=self.status or None, result=self.result or None,
                            approver=self.approver or None, application=self.application or None, cycle=self.cycle,
                            sort=self.sort.lstrip("-") or "user", descending=self.sort.startswith("-"), limit=None)


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
