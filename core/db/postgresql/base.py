"""Django's PostgreSQL backend behind the database circuit breaker (core.db.availability).

``ENGINE = "core.db.postgresql"`` (set by config/settings.py for DATABASE_URL): a
subclass as Django's docs describe for changing a built-in backend's behaviour.

* Taking a connection goes through the breaker: while it is open, ``DatabaseUnavailable``
  at once instead of a wait for the pool timeout; a failure to connect opens it.
* A connection found broken after an error (``is_usable``, asked by Django at the end
  of a request) opens it too, once a bare connect confirms the server is gone: one
  connection killed on its own must not turn the process away from a healthy database.
  When the server answers (it restarted between two requests), the pool drops every
  connection the restart broke at once, so each is not found by a request of its own.
* The half-open trial is that bare connect; when it succeeds, the pool drops the
  connections the outage left broken (``ConnectionPool.check``) before handing one out.
"""

from typing import Any

from django.db.backends.postgresql import base

from caching.circuit import CircuitOpenError
from core.db.availability import DatabaseUnavailable, database_breaker


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            return database_breaker().call(
                lambda: super(DatabaseWrapper, self).get_new_connection(conn_params),
                errors=(self.Database.OperationalError,),
                probe=lambda: self._probe(conn_params),
            )
        except CircuitOpenError as exc:
            raise DatabaseUnavailable("The database is unavailable.") from exc

    def is_usable(self) -> bool:
        if super().is_usable():
            return True
        breaker = database_breaker()
        if breaker.state == "closed":
            try:
                self._connect_once(self.get_connection_params())
            except self.Database.OperationalError as exc:
                breaker.record_failure(exc)
            else:
                self._drop_broken_pooled()
        return False

    def _probe(self, conn_params: dict[str, Any]) -> None:
        self._connect_once(conn_params)
        self._drop_broken_pooled()

    def _drop_broken_pooled(self) -> None:
        if self.pool is not None and not self.pool.closed:
            self.pool.check()

    def _connect_once(self, conn_params: dict[str, Any]) -> None:
        self.Database.connect(**conn_params).close()
