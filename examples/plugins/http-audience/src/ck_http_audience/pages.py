"""Reads a paged JSON collection one page at a time, following each page's ``next`` link."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from campaignkit.core import AudienceError, HttpClient, HttpError, redacted


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class Pager:
    """Fetches pages lazily: the caller has imported page n before page n+1 is asked for."""

    def __init__(self, client: HttpClient, headers: Mapping[str, str], *, base_url: str, items_field: str,
                 next_field: str, secret: str) -> None:
        self._client = client
        self._headers = dict(headers)
        self._origin = _origin(base_url)
        self._items_field = items_field
        self._next_field = next_field
        self._secret = secret

    def pages(self, first_url: str) -> Iterator[tuple[int, list[Any]]]:
        """(page number from 1, its records) until a page has no next link."""
        url: str | None = first_url
        visited: set[str] = set()
        number = 0
        while url is not None:
            number += 1
            if url in visited:
                # A server that links back would otherwise be read forever inside the launch transaction.
                raise AudienceError(f"hris: {redacted(url)} page {number}: the next link repeats an earlier page")
            visited.add(url)
            page = self._get(url, number)
            items = page.get(self._items_field)
            if not isinstance(items, list):
                raise AudienceError(f"hris: {redacted(url)} page {number}: no {self._items_field!r} list in the "
                                    f"answer (fields: {', '.join(sorted(page)) or 'none'})")
            yield number, items
            url = self._next(page, url, number)

    def _get(self, url: str, number: int) -> dict[str, Any]:
        try:
            answer = self._client.request("GET", url, headers=self._headers)
        except HttpError as exc:
            hint = " (check plugins.config.hris.token)" if exc.status in (401, 403) else ""
            said = f": {self._scrub(exc.excerpt)}" if exc.body else ""
            raise AudienceError(f"hris: page {number}: {exc}{hint}{said}") from None
        try:
            page = json.loads(answer.body)
        except ValueError:
            kind = answer.headers.get("Content-Type", "no content type")
            raise AudienceError(f"hris: {redacted(url)} page {number}: the answer is not JSON ({kind})") from None
        if not isinstance(page, dict):
            raise AudienceError(f"hris: {redacted(url)} page {number}: expected a JSON object, got "
                                f"{type(page).__name__}")
        return page

    def _next(self, page: Mapping[str, Any], url: str, number: int) -> str | None:
        link = page.get(self._next_field)
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise AudienceError(f"hris: {redacted(url)} page {number}: {self._next_field!r} must be a link or null")
        target = urljoin(url, link)  # absolute, or relative to the page it came from
        if _origin(target) != self._origin:
            # The token goes with every request: never to a host the configuration did not name.
            raise AudienceError(f"hris: {redacted(url)} page {number}: the next link leaves the configured host "
                                f"({redacted(target)}); refused")
        return target

    def _scrub(self, text: str) -> str:
        # A server that echoes the Authorization header back must not put the token into our messages.
        return text.replace(self._secret, "***")
