from typing import Any

from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import connections
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Model


class PostgresExclusionConstraint(ExclusionConstraint):
    """An exclusion constraint that exists only on PostgreSQL.

    SQLite has no exclusion constraints; there the booking service's check runs inside
    an IMMEDIATE transaction, which serialises writers and so holds under concurrency.
    Returning no SQL (None, which the schema editor skips; hence `Any` where the stubs say `str`)
    lets the same model and migrations run on both backends.
    """

    def constraint_sql(self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None) -> Any:
        if schema_editor is not None and schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None) -> Any:
        if schema_editor is not None and schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None) -> Any:
        if schema_editor is not None and schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model: type[Model], instance: Model, exclude: Any = None, using: str = "default") -> None:
        if connections[using].vendor != "postgresql":
            return
        super().validate(model, instance, exclude=exclude, using=using)
