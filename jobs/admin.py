from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin, StaffPageAdmin, admin_run_service
from core.exceptions import DomainError
from jobs.models import DeadLetter, JobDashboard, JobRecord, TaskEffect
from jobs.selectors import job_stats
from jobs.services import dead_letter_discard, dead_letter_retry


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else f"{line[: limit - 1]}…"


@admin.register(JobRecord)
class JobRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every background job; written only by jobs/. Filter by status to find trouble."""

    list_display = (
        "id",
        "task",
        "priority",
        "status",
        "attempts_of",
        "subject",
        "enqueued_at",
        "finished_at",
        "duration_ms",
        "error",
    )
    list_filter = ("status", "priority")
    search_fields = ("task", "subject", "request_id", "dedupe_key")
    search_help_text = "Search by task name, subject (booking:42), request id or dedupe key."
    # Newest first by primary key: an index walk that stops after one page.
    ordering = ("-pk",)
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("task", "args", "priority", "status", "subject", "dedupe_key", "request_id")}),
        ("Attempts", {"fields": ("attempts", "max_attempts", "dispatch", "worker", "result")}),
        (
            "Times",
            {
                "fields": (
                    "enqueued_at",
                    "eta",
                    "dispatched_at",
                    "started_at",
                    "lease_expires_at",
                    "finished_at",
                    "duration_ms",
                )
            },
        ),
        ("Last failure", {"fields": ("last_error", "last_traceback")}),
    )

    @admin.display(description="Attempts")
    def attempts_of(self, job: JobRecord) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="Last error")
    def error(self, job: JobRecord) -> str:
        return _first_line(job.last_error)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Jobs that will not run again by themselves: retry them once the cause is fixed, or discard them."""

    list_display = ("id", "task", "priority", "state", "attempts", "short_error", "failed_at", "job_link")
    list_filter = ("state", "priority")
    search_fields = ("task", "error")
    ordering = ("-pk",)
    show_full_result_count = False
    actions = ("retry", "discard")
    fields = (
        "job_link",
        "task",
        "args",
        "priority",
        "attempts",
        "error",
        "traceback",
        "enqueued_at",
        "failed_at",
        "state",
        "resolved_at",
        "resolved_by",
    )
    readonly_fields = fields
    raw_id_fields = ("resolved_by",)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.change_deadletter")

    @admin.display(description="Error")
    def short_error(self, letter: DeadLetter) -> str:
        return _first_line(letter.error)

    @admin.display(description="Job")
    def job_link(self, letter: DeadLetter) -> str:
        url = reverse("admin:jobs_jobrecord_change", args=[letter.job_id])
        return format_html('<a href="{}">#{}</a>', url, letter.job_id)

    @admin.action(description="Retry the selected jobs (fresh attempts)", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda letter: dead_letter_retry(dead_letter=letter, actor=request.user),
            done="retried",
        )

    @admin.action(description="Discard the selected dead letters", permissions=["retry"])
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda letter: dead_letter_discard(dead_letter=letter, actor=request.user),
            done="discarded",
        )


@admin.register(TaskEffect)
class TaskEffectAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Side effects (emails...) by idempotency key. No "done" time: in progress, or its run died and the
    job's retry performs it again; more than one claim: it may have happened more than once."""

    list_display = ("key", "created_at", "done_at", "claims", "job_id", "expires_at")
    list_filter = (("done_at", admin.EmptyFieldListFilter),)
    search_fields = ("key",)
    ordering = ("-pk",)
    show_full_result_count = False


@admin.register(JobDashboard)
class JobDashboardAdmin(StaffPageAdmin):
    """Queue depths, throughput, failures, durations, dead letters and workers on one page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm("jobs.view_jobrecord")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._resolve_dead_letter(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Job dashboard",
            "opts": self.model._meta,
            "stats": job_stats(),
            "can_retry": request.user.has_perm("jobs.change_deadletter"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "jobs/admin/dashboard.html", context)

    def _resolve_dead_letter(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("jobs.change_deadletter"):
            raise PermissionDenied
        action = request.POST.get("action")
        pk = request.POST.get("dead_letter", "")
        valid_pk = pk.isascii() and pk.isdigit() and len(pk) < 19
        letter = DeadLetter.objects.filter(pk=int(pk)).first() if valid_pk else None
        if letter is None or action not in ("retry", "discard"):
            self.message_user(request, "Unknown dead letter or action.", messages.ERROR)
        else:
            service = dead_letter_retry if action == "retry" else dead_letter_discard
            try:
                service(dead_letter=letter, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"Dead letter #{letter.pk}: {exc.message}", messages.WARNING)
            else:
                done = "queued again" if action == "retry" else "discarded"
                self.message_user(request, f"Dead letter #{letter.pk} ({letter.task}) {done}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)
