"""The fault suite's email backend: Django's file backend, shared by every process, optionally slow.

The job workers are separate processes, so the local-memory backend cannot show what they
sent; each message becomes a file in ``FAULTS_MAIL_DIR`` that the suite counts afterwards.
``FAULTS_EMAIL_DELAY_S`` makes each send take that long, like a slow SMTP server, so a worker
can be killed while it is sending (between claiming the email and having sent it).
"""

import os
import time
from collections.abc import Sequence

from django.core.mail.backends.filebased import EmailBackend
from django.core.mail.message import EmailMessage


class SlowFileBackend(EmailBackend):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("file_path", os.environ["FAULTS_MAIL_DIR"])
        super().__init__(*args, **kwargs)
        self.delay_s = float(os.environ.get("FAULTS_EMAIL_DELAY_S") or 0)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if self.delay_s and email_messages:
            time.sleep(self.delay_s)
        return super().send_messages(email_messages)
