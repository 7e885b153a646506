"""Settings of the sql_inventory updater (``plugins.config.sql_inventory``) and the database URL it connects to."""

from __future__ import annotations

from typing import Self
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

Identifier = str  # a table or column name, used as is: SQLAlchemy quotes it where the database needs quotes


class SqlInventoryConfig(BaseModel):
    # Inputs stay out of validation errors: the URL carries the database password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: SecretStr = Field(description="SQLAlchemy URL, e.g. postgresql://app:PASSWORD@db.example.org/assets or "
                                       "sqlite:////srv/inventory.db; it carries a password, so it is a secret.")
    table: Identifier = Field(min_length=1, description="The inventory table, e.g. assets.")
    db_schema: Identifier | None = Field(default=None, min_length=1, description="Its schema, if not the default.")
    key_column: Identifier = Field(min_length=1, description="Column holding the target key (give it a unique "
                                                              "constraint).")
    fields: dict[str, Identifier] = Field(
        min_length=1, description="Custom field name -> column. Only these fields can be written.")
    create_missing: bool = Field(default=False, description="Insert a row for a target the table lacks; "
                                                            "false: such an update fails permanently.")
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="SQLite: how long to wait for a lock; "
                                                                          "PostgreSQL: connect timeout.")

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        # Messages name the problem, never the URL: it carries the password.
        try:
            url = make_url(value.get_secret_value())
        except (ArgumentError, ValueError):
            raise ValueError("must be a SQLAlchemy database URL such as postgresql://user:password@host/db") from None
        try:
            url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(f"no SQLAlchemy dialect for {url.drivername!r}; install its driver") from None
        return value

    @field_validator("fields")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        empty = [name for name, column in value.items() if not name or not column]
        if empty:
            raise ValueError(f"field names and column names must not be empty: {', '.join(map(repr, empty))}")
        return value

    @model_validator(mode="after")
    def _key_not_writable(self) -> Self:
        if self.key_column in self.fields.values():
            # Writing the key would move the row to another target.
            raise ValueError(f"fields: the key column {self.key_column!r} cannot be written as a field")
        return self


def inventory_url(raw: str) -> URL:
    """The URL to connect with: a SQLite inventory file is opened read-write, never created.

    SQLite would otherwise create an empty file for a mistyped path and every update would then fail with "no
    such table"; with mode=rw a missing file is "unable to open database file", which retries until it is back.
    """
    url = make_url(raw)
    database = url.database
    if (url.get_backend_name() != "sqlite" or not database or database == ":memory:"
            or database.startswith("file:") or "uri" in url.query):
        return url
    return url.set(database=f"file:{quote(database)}").update_query_dict({"mode": "rw", "uri": "true"})


def display_url(raw: str) -> str:
    """The URL for messages: the password masked (SQLAlchemy renders it as ***)."""
    return make_url(raw).render_as_string(hide_password=True)
