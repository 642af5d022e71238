"""django-q2 brokers that carry tracked jobs (the transport; ``jobs.dispatcher`` adds the dispatcher).

On top of django-q2's broker they build the messages for tracked jobs themselves, one
cheap signed package per job with no log line per enqueue, and push many at once (one
Redis ``RPUSH`` or one ``INSERT``): ``enqueue_many`` hands over 500 jobs in one round trip.
They also record which queue a cluster serves beside its heartbeat: django-q2's ``Stat``
does not, and the dashboard counts workers per priority.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from django import db
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker, orm, redis_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from caching.redis import client_with
from jobs.priorities import queue_name

logger = logging.getLogger(__name__)

RUNNER = "jobs.runner.execute"
BLOCKING_POP_S = 1


@dataclass(frozen=True)
class JobMessage:
    """What a worker needs to claim and run a job without reading its record first."""

    job_id: int
    dispatch: int
    attempts: int
    max_attempts: int
    task: str
    args: list[Any]
    request_id: str
    timeout: int | None

    @classmethod
    def of(cls, job: Any, *, timeout: int | None) -> "JobMessage":
        """The message for ``job`` (a ``JobRecord``) at its current dispatch number."""
        return cls(
            job_id=job.pk,
            dispatch=job.dispatch,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            task=job.task,
            args=job.args,
            request_id=job.request_id,
            timeout=timeout,
        )

    def package(self) -> str:
        task: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "name": f"job-{self.job_id}.{self.dispatch}",
            "func": RUNNER,
            "args": (self.job_id, self.dispatch, self.attempts, self.max_attempts, self.task, self.args),
            "kwargs": {"request_id": self.request_id},
            "started": timezone.now(),
            # The job record is the result store; django-q2 still saves what it alone sees
            # (an attempt killed at its timeout).
            "save": False,
            "ack_failure": True,
        }
        if self.timeout is not None:
            task["timeout"] = self.timeout
        return SignedPackage.dumps(task)


class TrackedJobsBroker:
    """Mixed into a django-q2 broker class; see the module docstring."""

    @property
    def queue(self) -> str:
        # django-q2's Redis broker stores queue "x" under the key "django_q:x:q"; the ORM one under "x".
        return self.list_key.removeprefix("django_q:").removesuffix(":q")  # type: ignore[attr-defined]

    def push_jobs(self, messages: list[JobMessage]) -> None:
        raise NotImplementedError

    @staticmethod
    def _queue_key(cluster_id: object) -> str:
        # Outside django-q2's stat key pattern, which only holds signed Stat packages.
        return f"django_q:{Conf.PREFIX}:queue-of:{cluster_id}"

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        """Heartbeat of the cluster (every guard cycle); also say which queue it serves.

        django-q2's Stat does not record its queue, and the dashboard counts workers per priority.
        """
        super().set_stat(key, value, timeout)  # type: ignore[misc]
        if (store := self._stat_store()) is not None:
            store.set(self._queue_key(key.rsplit(":", 1)[-1]), self.queue, timeout)

    def _stat_store(self) -> Any:
        """Where django-q2 keeps this broker's cluster heartbeats: a Django cache or the Redis client."""
        raise NotImplementedError

    def queue_of_cluster(self, cluster_id: object) -> str:
        queue = store.get(self._queue_key(cluster_id)) if (store := self._stat_store()) is not None else None
        return queue.decode() if isinstance(queue, bytes) else (queue or "")


class OrmBroker(TrackedJobsBroker, orm.ORM):
    @staticmethod
    def get_connection(list_key: str | None = None):
        # django-q2 closes stale connections on every call, which in a web process means a
        # reconnect per enqueue; only the long-lived pusher needs that (see dequeue).
        return OrmQ.objects.using(Conf.ORM)

    def dequeue(self):
        if transaction.get_autocommit(using=Conf.ORM):
            db.close_old_connections()
        return super().dequeue()

    def _stat_store(self) -> Any:
        return self.cache

    def push_jobs(self, messages: list[JobMessage]) -> None:
        now = timezone.now()
        OrmQ.objects.using(Conf.ORM).bulk_create(
            [OrmQ(key=self.list_key, payload=message.package(), lock=now) for message in messages]
        )


class RedisBroker(TrackedJobsBroker, redis_broker.Redis):
    _pull_failing = False

    def dequeue(self):
        try:
            task = self._blocking_client().blpop(self.list_key, BLOCKING_POP_S)
        except (redis.ConnectionError, redis.TimeoutError):
            # django-q2 answers a failed pull by pausing the pusher for 10 s and then replacing
            # it: a Redis failover (Sentinel promotes in ~3 s) would start the jobs queued
            # meanwhile 10-15 s after Redis is back. Wait one pop's length and pull again.
            if not self._pull_failing:
                logger.warning("Redis is unreachable: %s pulls again every %s s", self.queue, BLOCKING_POP_S)
            self._pull_failing = True
            time.sleep(BLOCKING_POP_S)
            return None
        if self._pull_failing:
            logger.warning("Redis is reachable again: %s pulls", self.queue)
            self._pull_failing = False
        return [(None, task[1])] if task else None

    def _blocking_client(self) -> redis.Redis:
        """The pusher's own connection for BLPOP.

        The shared django-redis pool fails fast (REDIS_SOCKET_TIMEOUT_S, 0.2 s by default) so
        a stuck Redis cannot hold up web requests; a blocking pop on it would time out while
        legitimately waiting for work, and django-q2 answers a failed pop by pausing the
        pusher for 10 s. This connection waits longer than the pop itself.
        """
        client = getattr(self, "_blocking", None)
        if client is None:
            client = self._blocking = client_with(
                socket_timeout=BLOCKING_POP_S + 5,
                socket_connect_timeout=5,
                health_check_interval=30,
            )
        return client

    def _stat_store(self) -> Any:
        return self.connection

    def push_jobs(self, messages: list[JobMessage]) -> None:
        self.connection.rpush(self.list_key, *(message.package() for message in messages))


_brokers: dict[str, TrackedJobsBroker] = {}


def broker_for(priority: str) -> TrackedJobsBroker:
    """This process's broker for ``priority`` (one per queue, reused for every push)."""
    name = queue_name(priority)
    broker = _brokers.get(name)
    if broker is None:
        broker = get_broker(name)
        if not isinstance(broker, TrackedJobsBroker):
            raise TypeError(f'Q_CLUSTER["broker_class"] must be a jobs.dispatcher broker, got {type(broker).__name__}.')
        _brokers[name] = broker
    return broker
