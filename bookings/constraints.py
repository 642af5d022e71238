from django.contrib.postgres.constraints import ExclusionConstraint
from django.db import connections


class PostgresExclusionConstraint(ExclusionConstraint):
    """An exclusion constraint that exists only on PostgreSQL.

    SQLite has no exclusion constraints; there the booking service's check runs inside
    an IMMEDIATE transaction, which serialises writers and so holds under concurrency.
    Returning no SQL lets the same model and migrations run on both backends.
    """

    def constraint_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using="default"):
        if connections[using].vendor != "postgresql":
            return
        super().validate(model, instance, exclude=exclude, using=using)
