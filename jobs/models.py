from django.conf import settings
from django.db import models
from django.db.models import F, Q

from jobs.priorities import Priority


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # The last attempt failed with a transient error; the next one is due at ``eta``.
    FAILED = "failed", "Failed, will retry"
    DEAD = "dead", "Dead"


# Not finished yet: a dedupe key is taken while its job is in one of these states.
PENDING_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED)
# Waiting for the dispatcher: never handed to the broker, delayed, or backing off.
WAITING_STATUSES = (JobStatus.QUEUED, JobStatus.FAILED)
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.DEAD)


class JobRecord(models.Model):
    """One background job: what runs, where it stands, and how each attempt went.

    ``dispatch`` counts hand-overs to the broker. A broker message carries the number it
    was sent with and a worker may only claim the job while the numbers match, so a
    duplicate or stale delivery (a re-dispatch after a lost push, a redelivery by the ORM
    broker) is dropped instead of running the task twice.
    """

    task = models.CharField(max_length=200)
    priority = models.CharField(max_length=16, choices=Priority.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    args = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    dispatch = models.PositiveIntegerField(default=0)
    dedupe_key = models.CharField(max_length=200, blank=True)
    # What the job is about, e.g. "booking:42" or "host:7".
    subject = models.CharField(max_length=100, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    enqueued_at = models.DateTimeField()
    # Not to be started before this moment (a delay or a retry backoff); null: at once.
    eta = models.DateTimeField(null=True, blank=True)
    # When the job was last handed to the broker; null: the dispatcher still has to.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # While running: the attempt holds the job until then (the claim sets it from the task's own
    # timeout; a long task's heartbeat renews it). Past it, the worker is declared lost.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # End of the last attempt, whatever its outcome.
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True)
    result = models.TextField(blank=True)
    # The last failed attempt: "ExceptionType: message", and its traceback.
    last_error = models.TextField(blank=True)
    last_traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The dispatcher's scan: waiting jobs of one priority that are due.
            models.Index(
                fields=["priority", "eta"],
                name="job_waiting_due_idx",
                condition=Q(dispatched_at__isnull=True, status__in=WAITING_STATUSES),
            ),
            # Lost-push sweep: queued jobs handed to the broker long ago.
            models.Index(fields=["priority", "dispatched_at"], name="job_queued_idx", condition=Q(status="queued")),
            # Stuck-attempt sweep: running jobs whose lease ran out.
            models.Index(fields=["lease_expires_at"], name="job_running_lease_idx", condition=Q(status="running")),
            # Dashboard windows and pruning.
            models.Index(fields=["finished_at"], name="job_finished_idx", condition=Q(finished_at__isnull=False)),
            models.Index(fields=["subject"], name="job_subject_idx", condition=~Q(subject="")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(status__in=PENDING_STATUSES) & ~Q(dedupe_key=""),
                name="job_dedupe_key_pending_unique",
            ),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="job_status_valid"),
            models.CheckConstraint(condition=Q(priority__in=Priority.values), name="job_priority_valid"),
            models.CheckConstraint(condition=Q(attempts__lte=F("max_attempts")), name="job_attempts_within_max"),
        ]

    def __str__(self) -> str:
        return f"Job #{self.pk} {self.task} ({self.status})"


class DeadLetterState(models.TextChoices):
    OPEN = "open", "Open"
    RETRIED = "retried", "Retried"
    DISCARDED = "discarded", "Discarded"


class DeadLetter(models.Model):
    """A job that will not be retried on its own: out of attempts, or a permanent error.

    Self-contained (task, arguments, error) so staff can judge it without the job record;
    staff either retry it (the job is queued again with fresh attempts) or discard it.
    """

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="dead_letters")
    task = models.CharField(max_length=200)
    priority = models.CharField(max_length=16, choices=Priority.choices)
    args = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField()
    error = models.TextField()
    traceback = models.TextField(blank=True)
    enqueued_at = models.DateTimeField()
    failed_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=DeadLetterState.choices, default=DeadLetterState.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-failed_at", "-id"]
        indexes = [models.Index(fields=["state", "-failed_at"], name="dead_letter_state_failed_idx")]
        constraints = [
            models.UniqueConstraint(fields=["job"], condition=Q(state="open"), name="dead_letter_one_open_per_job"),
            models.CheckConstraint(condition=Q(state__in=DeadLetterState.values), name="dead_letter_state_valid"),
        ]

    def __str__(self) -> str:
        return f"Dead letter #{self.pk}: {self.task} ({self.state})"


class TaskEffect(models.Model):
    """A side effect a task has performed (or is performing), by an idempotency key.

    Tasks may run twice; an email or a webhook should not. See ``jobs.effects.effect_once``.
    """

    key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Null while the effect is in progress; set once it has happened.
    done_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    # The job attempt that holds the claim (none outside a job). While that attempt runs, nobody
    # else performs the effect; once it is over without confirming, the next run performs it.
    job = models.ForeignKey(JobRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="effects")
    dispatch = models.PositiveIntegerField(null=True, blank=True)
    # Runs that set out to perform the effect: above 1, an earlier one may have done it already.
    claims = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return self.key


class JobDashboard(JobRecord):
    """The job dashboard's place in the admin index; no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "job dashboard"
        verbose_name_plural = "job dashboard"
