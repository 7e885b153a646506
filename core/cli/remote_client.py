"""The API of a remote campaignkit, for `campaignkit remote`: one request per call, and its JSON, or one line that says
why not (a refused token, a refusal for the role, the API's detail, a server that cannot be reached). httpx is
imported when a request is made, so that `--help` does not pay for it.

core/outbound/client.py is the client for plugins' outbound calls: it reads every answer whole, retries and refuses
plain http to any host but loopback by design. This one streams exports, sends nothing twice (a launch is not
retried) and leaves the choice of URL to the person who types it, with a warning for a token sent in clear.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import CampaignkitError, ConfigurationError, DefinitionError

if TYPE_CHECKING:
    import httpx

URL_VARIABLE = "CAMPAIGNKIT_REMOTE_URL"
TOKEN_VARIABLE = "CAMPAIGNKIT_REMOTE_TOKEN"
CA_FILE_VARIABLE = "CAMPAIGNKIT_REMOTE_CA_FILE"
REFUSED_TOKEN = "the token was refused (unknown, revoked or expired)"
NO_TOKEN = f"no token was given and the server wants one: set {TOKEN_VARIABLE}, or use --token-file"
CHUNK = 64 * 1024


class RemoteError(CampaignkitError):
    """A request that did not succeed, as one line; ``status`` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Remote:
    """Where the remote campaignkit is, and the personal token to act with there."""

    url: str
    token: str | None
    ca_file: Path | None = None
    timeout_seconds: float = 30.0

    @classmethod
    def configured(cls, url: str | None, token: str | None, token_file: Path | None, ca_file: Path | None,
                   timeout_seconds: float) -> Remote:
        """From the options (which Typer has already filled from the environment variables), checked."""
        if not url:
            raise ConfigurationError(f"no server: set {URL_VARIABLE}, or use --url (e.g. https://ck.example.org)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigurationError(f"--url: {url!r} is not an http(s) URL such as https://ck.example.org")
        if token_file is not None:
            if token:
                raise ConfigurationError("give the token once: --token-file, or --token / " + TOKEN_VARIABLE)
            try:
                token = token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(f"--token-file: {exc.strerror or exc}: {token_file}") from None
        return cls(url.rstrip("/"), token or None, ca_file, timeout_seconds)

    @property
    def shown(self) -> str:
        """The URL for messages: scheme, host, port and path, never a user:password@."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    @property
    def in_clear(self) -> bool:
        """A token about to travel unencrypted to another machine."""
        from ..outbound.client import is_loopback

        host = urlsplit(self.url).hostname or ""
        return self.token is not None and self.url.startswith("http://") and not is_loopback(host)

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        import httpx

        verify: ssl.SSLContext | bool = True
        if self.ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(f"--ca-file: {exc}: {self.ca_file}") from None
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout_seconds, verify=verify,
                          follow_redirects=False, trust_env=False) as client:
            try:
                yield client
            except httpx.TransportError as exc:
                raise RemoteError(f"cannot reach {self.shown}: {_reason(exc)}") from None

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
             content: bytes | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """One request; the answer's JSON (None for an empty body), or RemoteError / DefinitionError."""
        with self._client() as client:
            answer = client.request(method, path, params=_params(params), json=json, content=content,
                                    headers=headers)
            if not answer.is_success:
                raise self.refusal(answer)
            return answer.json() if answer.content else None

    def every(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a listing paged by cursor: the pages its X-Next-Cursor header leads to, in order."""
        rows: list[Any] = []
        query = dict(params or {})
        with self._client() as client:
            while True:
                answer = client.get(path, params=_params(query))
                if not answer.is_success:
                    raise self.refusal(answer)
                rows.extend(answer.json())
                cursor = answer.headers.get("X-Next-Cursor")
                if not cursor:
                    return rows
                query["cursor"] = cursor

    def download(self, path: str, params: Mapping[str, Any], out: IO[bytes]) -> int:
        """Stream a GET's body into ``out`` as it arrives; the bytes written."""
        written = 0
        with self._client() as client, client.stream("GET", path, params=_params(params)) as answer:
            if not answer.is_success:
                answer.read()
                raise self.refusal(answer)
            for chunk in answer.iter_bytes(CHUNK):
                out.write(chunk)
                written += len(chunk)
        return written

    def refusal(self, answer: httpx.Response) -> CampaignkitError:
        """The error for an answer other than 2xx: the API's own words where it has some."""
        status = answer.status_code
        try:
            detail = answer.json().get("detail") if answer.content else None
        except (ValueError, AttributeError):
            detail = None
        raw = detail
        if status == 401:
            return RemoteError(REFUSED_TOKEN if self.token else NO_TOKEN, status, raw)
        if status == 422 and isinstance(detail, list) and detail and all(
                isinstance(p, dict) and "problem" in p for p in detail):
            return DefinitionError([str(p["problem"]) for p in detail])  # line, column and node, as the API says
        if isinstance(detail, list):  # FastAPI's own validation errors: where, and what is wrong
            detail = "; ".join(f"{'.'.join(str(part) for part in p.get('loc', ()))}: {p.get('msg')}"
                               if isinstance(p, dict) else str(p) for p in detail)
        elif isinstance(detail, dict):
            detail = detail.get("question") or detail.get("message") or str(detail)
        if not detail:
            excerpt = " ".join(answer.text.split())[:200]
            detail = f"{self.shown} answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
            if 300 <= status < 400 and answer.headers.get("location"):
                detail += f" (a redirect to {answer.headers['location']}: use that URL)"
        elif status == 429 and answer.headers.get("retry-after"):
            detail = f"{detail} (try again in {answer.headers['retry-after']} s)"
        return RemoteError(str(detail), status, raw)


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The query without its unset options."""
    return {key: value for key, value in params.items() if value is not None} if params else None


def _reason(exc: Exception) -> str:
    """Why a connection failed, on one line (a TLS error names the certificate problem)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: {cause.verify_message or cause.reason} (a private CA: --ca-file or {CA_FILE_VARIABLE})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is campaignkit serving there?)"
    return text
