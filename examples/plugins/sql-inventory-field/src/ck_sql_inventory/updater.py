"""sql_inventory: sets a custom field by writing its mapped column in the target's row of an inventory table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, column, create_engine, inspect, table
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from campaignkit.core import FieldUpdate, FieldUpdater, PermanentStepError, StepError

from .config import SqlInventoryConfig, display_url, inventory_url

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

# No answer, a lock, a dropped connection, a busy pool: a later attempt may well succeed.
TEMPORARY = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class SqlInventoryUpdater(FieldUpdater):
    """Writes mapped custom fields into the target's row of a table in an external SQL database.

    Safe to repeat: an UPDATE setting a column to the value it already holds changes nothing, so a retry or a
    redelivered step with the same idempotency key leaves the row as the first attempt did.
    """

    name = "sql_inventory"
    Config = SqlInventoryConfig
    config: SqlInventoryConfig

    def __init__(self, config: SqlInventoryConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        raw = config.url.get_secret_value()
        url = inventory_url(raw)
        self._where = f"{display_url(raw)} table {config.table!r}"
        # As given and as decoded: a driver message could quote either (none we know of does).
        self._secrets = sorted({secret for secret in (url.password, _encoded_password(raw)) if secret},
                               key=len, reverse=True)
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            connect_args["timeout"] = config.timeout_seconds
        elif url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = max(1, round(config.timeout_seconds))
        # No engine echo, and SQLAlchemy's own reprs mask the password.
        self._engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        # Table and column objects from configured names only: SQLAlchemy quotes them, values are bound parameters.
        columns = {config.key_column, *config.fields.values()}
        self._table = table(config.table, *(column(name) for name in sorted(columns)), schema=config.db_schema)
        self._checked = False

    def close(self) -> None:
        self._engine.dispose()

    def update(self, update: FieldUpdate) -> None:
        column_name = self.config.fields.get(update.field)
        if column_name is None:
            mapped = ", ".join(map(repr, sorted(self.config.fields)))
            raise PermanentStepError(f"sql_inventory: field {update.field!r} is not mapped to a column (mapped: "
                                     f"{mapped}); add it to plugins.config.{self.settings_key()}.fields")
        try:
            with self._engine.begin() as conn:
                if not self._checked:
                    self._check_table(conn)
                self._write(conn, column_name, update)
        except SQLAlchemyError as exc:
            raise self._step_error(exc) from None

    def _write(self, conn: Connection, column_name: str, update: FieldUpdate) -> None:
        key = self._table.c[self.config.key_column]
        found = conn.execute(self._table.update().where(key == update.target_key)
                             .values({column_name: update.value})).rowcount
        if found == 1:
            return
        if found > 1:
            # Raised inside the transaction: every row it touched is rolled back.
            raise PermanentStepError(f"sql_inventory: {found} rows of {self._where} have {self.config.key_column} = "
                                     f"{update.target_key!r}; the key column must be unique")
        if not self.config.create_missing:
            raise PermanentStepError(f"sql_inventory: no row of {self._where} has {self.config.key_column} = "
                                     f"{update.target_key!r} (create_missing is off)")
        try:
            conn.execute(self._table.insert().values({self.config.key_column: update.target_key,
                                                      column_name: update.value}))
        except IntegrityError:
            # Another worker inserted the row since our UPDATE: the next attempt updates it.
            raise StepError(f"sql_inventory: a row for {update.target_key!r} appeared while inserting it; "
                            "retrying") from None

    def _check_table(self, conn: Connection) -> None:
        """Once, on first use: the table and every mapped column exist (a typo fails the step, not every retry)."""
        try:
            present = {col["name"] for col in inspect(conn).get_columns(self.config.table,
                                                                       schema=self.config.db_schema)}
        except NoSuchTableError:
            raise PermanentStepError(f"sql_inventory: {self._where} does not exist") from None
        wanted = {self.config.key_column, *self.config.fields.values()}
        missing = sorted(wanted - present)
        if missing:
            raise PermanentStepError(f"sql_inventory: {self._where} has no column(s) {', '.join(map(repr, missing))}")
        self._checked = True

    def _step_error(self, exc: SQLAlchemyError) -> StepError:
        # The driver's own message, first line only: SQLAlchemy appends the statement and a help link.
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        text = (str(cause).strip().splitlines() or [""])[0]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        message = f"sql_inventory: {self._where}: {type(cause).__name__}: {text}"
        temporary = isinstance(exc, TEMPORARY) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        return StepError(message) if temporary else PermanentStepError(message)


def _encoded_password(raw: str) -> str | None:
    """The password as written in the URL (percent-encoded), between the user's colon and the host's @."""
    authority = raw.partition("://")[2].partition("/")[0]
    credentials = authority.rpartition("@")[0]
    return (credentials.partition(":")[2] or None) if credentials else None
