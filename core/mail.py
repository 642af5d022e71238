"""Outgoing email: a text body and an HTML alternative rendered from ``templates/emails/``.

Templates come in pairs, ``emails/<name>.txt`` and ``emails/<name>.html``. Sending uses
the configured backend (console in development, locmem in tests, SMTP in production) and
raises on failure, so the job that sends can retry.
"""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_templated_email(*, to: list[str], subject: str, template: str, context: dict[str, Any]) -> None:
    context = {"site_name": "Staybase", **context}
    message = EmailMultiAlternatives(
        # A header: never let a value carry a line break into it.
        subject=" ".join(subject.split()),
        body=render_to_string(f"emails/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    message.send(fail_silently=False)
