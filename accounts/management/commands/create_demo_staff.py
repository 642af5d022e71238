from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from accounts.models import User
from core.management.base import StaybaseCommand

DEMO_STAFF_EMAIL = "admin@staybase.local"
# Published in README.md on purpose: this account exists only for local demos.
DEMO_STAFF_PASSWORD = "staybase-admin"  # noqa: S105


class Command(StaybaseCommand):
    help = f"Create the demo staff superuser {DEMO_STAFF_EMAIL}, or reset its password. Refused in production."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.IS_PRODUCTION:
            raise CommandError("Refused when DJANGO_ENV=production: the demo staff password is public.")
        with transaction.atomic():
            user, created = User.objects.select_for_update().get_or_create(email=DEMO_STAFF_EMAIL)
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(DEMO_STAFF_PASSWORD)
            user.save()
        action = "Created" if created else "Reset the password of"
        self.info(f"{action} demo staff superuser {DEMO_STAFF_EMAIL} (password: {DEMO_STAFF_PASSWORD}).")
