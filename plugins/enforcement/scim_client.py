"""The SCIM 2.0 side of the scim action: scim2-client over httpx2.

Imported when a scim action is built, not when the plugin loads: the SCIM models take most of a second to import,
which every command that builds a runtime would otherwise pay (benchmarks/cli.py).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx2
from scim2_client import RequestNetworkException, SCIMClientException
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    EnterpriseUser,
    Group,
    ListResponse,
    NotFoundException,
    PatchOp,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimPolicy,
    ScimProvider,
    SearchRequest,
    User,
)

from campaignkit.core import EnforcementResult, PermanentStepError, StepError, redacted, tls_context

if TYPE_CHECKING:
    from .scim import ScimConfig

ScimUser = User[EnterpriseUser]
USER_ATTRIBUTES = ["id", "userName", "active"]
GROUP_ATTRIBUTES = ["id", "displayName", "members"]


class ScimDirectory:
    """Finds users and groups and changes them, turning the client's exceptions into step errors."""

    def __init__(self, config: ScimConfig) -> None:
        self.config = config
        headers = {"Accept": "application/scim+json"}
        if config.token is not None:
            headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
        tls = tls_context(config.ca_file)
        self._http = httpx2.Client(base_url=config.url, headers=headers, verify=tls,
                                   timeout=config.timeout_seconds, follow_redirects=False)
        self._scim = SyncSCIMClient(self._http, provider=_provider())
        self._where = redacted(config.url)

    def close(self) -> None:
        self._http.close()

    def find_user(self, value: str) -> ScimUser:
        with self._errors(f"finding user {value!r}"):
            search = _search(_filter(self.config.user_attribute, value), USER_ATTRIBUTES)
            users = _resources(self._scim.query(ScimUser, query_parameters=search))
        if not users:
            raise PermanentStepError(f"scim: no user with {self.config.user_attribute} {value!r} at {self._where}")
        if len(users) > 1:
            raise PermanentStepError(f"scim: more than one user with {self.config.user_attribute} {value!r}")
        return users[0]

    def _find_group(self, ref: str) -> Group:
        """The group by displayName, else by id; read by id so that its members are all there."""
        with self._errors(f"finding group {ref!r}"):
            groups = _resources(self._scim.query(Group, query_parameters=_search(_filter("displayName", ref),
                                                                                 ["id", "displayName"])))
            if len(groups) > 1:
                raise PermanentStepError(f"scim: more than one group named {ref!r}")
            try:
                # A list answer may leave members out (large groups); the group itself must not.
                return self._get(Group, str(groups[0].id) if groups else ref, GROUP_ATTRIBUTES)
            except NotFoundException:
                raise PermanentStepError(f"scim: no group with displayName or id {ref!r} at {self._where}") from None

    def remove_membership(self, user: ScimUser, group_ref: str) -> EnforcementResult:
        group = self._find_group(group_ref)
        user_id, group_id = str(user.id), str(group.id)
        detail = {"mode": "remove_from_group", "user_id": user_id, "group_id": group_id, "group": group.display_name}
        if not _is_member(group, user_id):
            return EnforcementResult(removed=True, detail={**detail, "already": True})
        patch = _patch(Group, {"op": "remove", "path": f"members[value eq {json.dumps(user_id)}]"})
        with self._errors(f"removing user {user_id} from group {group_id}"):
            self._scim.modify(Group, group_id, patch)
            # Verified rather than trusted: some servers answer 2xx to a remove that matched nothing.
            still = _is_member(self._get(Group, group_id, GROUP_ATTRIBUTES), user_id)
        return EnforcementResult(removed=not still, detail={**detail, "already": False})

    def deactivate(self, user: ScimUser) -> EnforcementResult:
        user_id = str(user.id)
        detail = {"mode": "deactivate", "user_id": user_id}
        if user.active is False:
            return EnforcementResult(removed=True, detail={**detail, "already": True})
        patch = _patch(ScimUser, {"op": "replace", "path": "active", "value": False})
        with self._errors(f"deactivating user {user_id}"):
            self._scim.modify(ScimUser, user_id, patch)
            active = self._get(ScimUser, user_id, USER_ATTRIBUTES).active
        return EnforcementResult(removed=active is False, detail={**detail, "already": False, "active": active})

    def _get(self, model: Any, resource_id: str, attributes: list[str]) -> Any:
        return self._scim.query(model, resource_id,
                                query_parameters=ResponseParameters.model_validate({"attributes": attributes}))

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn the client's exceptions into step errors: retry what a later attempt can fix, nothing else."""
        try:
            yield
        except StepError:
            raise
        except RequestNetworkException as exc:
            cause = exc.__cause__
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise _step_error(f"scim: {doing}: {self._where} unreachable ({reason})",
                              temporary=not _certificate_problem(exc)) from None
        except SCIMException as exc:  # the server answered with a SCIM error
            status = _int_or_none(exc.status)
            raise _step_error(f"scim: {doing}: {self._where} answered HTTP {status}: {str(exc)[:200]}",
                              temporary=_temporary_status(status)) from None
        except SCIMClientException as exc:  # an answer that is not the SCIM the operation expects
            status = _int_or_none(getattr(exc.source, "status_code", None))
            raise _step_error(f"scim: {doing}: {self._where}: {exc}", temporary=_temporary_status(status)) from None
        except ValueError as exc:  # a request the models refuse to build: the same every time
            raise PermanentStepError(f"scim: {doing}: {exc}") from None




def _provider() -> ScimProvider:
    # Fixed models instead of discovery: three fewer requests per start and no dependence on /Schemas being
    # right. Attributes of extensions the server has and these models lack are dropped, not refused.
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[ResourceType.from_resource(ScimUser), ResourceType.from_resource(Group)],
        policy=ScimPolicy(unknown=ScimPolicy.Unknown.ignore),
    )


def _filter(attribute: str, value: str) -> str:
    # Filter values are JSON strings (RFC 7644 §3.4.2.2): json.dumps escapes quotes and backslashes.
    return f"{attribute} eq {json.dumps(value, ensure_ascii=False)}"


def _temporary_status(status: int | None) -> bool:
    # The server is busy, restarting or behind a proxy that is; other answers will not change on their own.
    return status is not None and (status in (408, 425, 429) or status >= 500)


def _step_error(message: str, *, temporary: bool) -> StepError:
    return StepError(message) if temporary else PermanentStepError(message)


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# Built with model_validate: the models take SCIM's camelCase names and coerce strings to filters and paths.
def _search(scim_filter: str, attributes: list[str]) -> SearchRequest[Any]:
    return SearchRequest.model_validate({"filter": scim_filter, "attributes": attributes, "count": 2})


def _patch(model: Any, operation: dict[str, Any]) -> PatchOp[Any]:
    return PatchOp[model].model_validate({"Operations": [operation]})


def _resources(found: Any) -> list[Any]:
    if not isinstance(found, ListResponse):
        raise PermanentStepError(f"scim: expected a list response, got {type(found).__name__}")
    return list(found.resources or [])


def _is_member(group: Group, user_id: str) -> bool:
    return any(member.value == user_id for member in group.members or [])


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
