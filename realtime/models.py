import uuid

from django.db import models


class Room(models.Model):
    """A room's event counter: locked while an event is written, so offsets have no gaps.

    ``epoch`` names one continuous history of the room; it changes only when that history
    is lost (the row deleted with its events), and clients holding an offset of another
    epoch are told to resync.
    """

    name = models.CharField(max_length=64, primary_key=True)
    epoch = models.CharField(max_length=32, default="")
    last_offset = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}@{self.last_offset}"


class Event(models.Model):
    """One delivered-or-to-be-delivered message; written in the transaction of the change."""

    id = models.BigAutoField(primary_key=True)
    room = models.CharField(max_length=64)
    offset = models.BigIntegerField()
    epoch = models.CharField(max_length=32)
    uuid = models.UUIDField(default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=40)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "offset"], name="realtime_event_room_offset")]
        # Pruning reads a room's oldest rows by time (realtime.services._prune).
        indexes = [models.Index(fields=["room", "created_at"], name="realtime_event_room_created")]

    def __str__(self) -> str:
        return f"{self.room}#{self.offset} {self.event}"


class LivePage(models.Model):
    """No table: gives the admin's Live page its place in the index and a view permission."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "live"
        verbose_name_plural = "live"

    def __str__(self) -> str:
        return "Live"


class SocketProcess(models.Model):
    """Presence: each socket process writes its sockets and rooms here every few seconds."""

    name = models.CharField(max_length=128, primary_key=True)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    sockets = models.PositiveIntegerField(default=0)
    rooms = models.JSONField(default=dict)
    delivered = models.BigIntegerField(default=0)
    dropped = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name
