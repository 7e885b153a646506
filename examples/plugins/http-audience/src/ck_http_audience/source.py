"""hris: one target per record of a paged JSON REST API (an HR system's employees), streamed page by page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from campaignkit.core import AudienceError, AudienceSource, HttpClient, Target, user_agent

from .config import HrisConfig, HrisSpec, parse_spec
from .pages import Pager

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


class HrisAudience(AudienceSource):
    """Targets from a paged JSON REST API (an HR system), streamed page by page following ``next`` links.

    A record without its key, or a key seen before, stops the launch with its page and record index.
    """

    name = "hris"
    Config = HrisConfig
    config: HrisConfig

    def __init__(self, config: HrisConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        client = HttpClient(ca_file=config.ca_file, timeout_seconds=config.timeout_seconds, retries=config.retries)
        secret = config.token.get_secret_value()
        headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json", "User-Agent": user_agent()}
        self._pager = Pager(client, headers, base_url=config.base_url, items_field=config.items_field,
                            next_field=config.next_field, secret=secret)

    def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]:
        parsed = parse_spec(spec, self.config.page_size_param)
        query = urlencode({**parsed.filters, self.config.page_size_param: self.config.page_size}, doseq=True)
        first_url = f"{self.config.base_url}{parsed.endpoint}?{query}"
        # Keys only, with where each was first seen; records are not kept once yielded.
        first_seen: dict[str, tuple[int, int]] = {}
        ordinal = 0
        for page, records in self._pager.pages(first_url):
            for index, record in enumerate(records):
                where = f"hris: {parsed.endpoint} page {page}, record index {index}"
                key = _key(record, parsed, where)
                if key in first_seen:
                    # An employee listed twice usually means records shifted between pages while we read:
                    # refuse rather than silently launch on a list that may also have skipped someone.
                    seen_page, seen_index = first_seen[key]
                    raise AudienceError(f"{where}: duplicate key {key!r} (first at page {seen_page}, "
                                        f"record index {seen_index})")
                first_seen[key] = (page, index)
                ordinal += 1
                yield Target(key=key, attributes=record, line=ordinal)


def _key(record: Any, spec: HrisSpec, where: str) -> str:
    if not isinstance(record, dict):
        raise AudienceError(f"{where}: expected a JSON object, got {type(record).__name__}")
    parts = []
    for field in spec.key_fields:
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise AudienceError(f"{where}: {field!r} must be text or a whole number, got {type(value).__name__}")
        text = "" if value is None else str(value).strip()
        if not text:
            raise AudienceError(f"{where}: no {field!r} field, or it is empty (the audience key)")
        parts.append(text)
    return "|".join(parts)
