from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from accounts.management.commands.create_demo_staff import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD
from accounts.models import User

pytestmark = pytest.mark.django_db


def run_command() -> str:
    out = StringIO()
    call_command("create_demo_staff", stdout=out)
    return out.getvalue()


def test_create_demo_staff_creates_a_superuser_that_can_log_in():
    output = run_command()

    user = User.objects.get(email=DEMO_STAFF_EMAIL)
    assert user.is_staff and user.is_superuser and user.is_active
    assert not user.is_host
    assert authenticate(username=DEMO_STAFF_EMAIL, password=DEMO_STAFF_PASSWORD) == user
    assert output.startswith(f"Created demo staff superuser {DEMO_STAFF_EMAIL}")


def test_create_demo_staff_twice_keeps_one_user_and_resets_the_password():
    run_command()
    user = User.objects.get(email=DEMO_STAFF_EMAIL)
    user.set_password("changed-by-someone-else")
    user.is_active = False
    user.save()

    output = run_command()

    assert User.objects.filter(email=DEMO_STAFF_EMAIL).count() == 1
    assert authenticate(username=DEMO_STAFF_EMAIL, password=DEMO_STAFF_PASSWORD) == user
    assert output.startswith(f"Reset the password of demo staff superuser {DEMO_STAFF_EMAIL}")


def test_create_demo_staff_is_refused_in_production(settings):
    settings.IS_PRODUCTION = True

    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        run_command()

    assert not User.objects.filter(email=DEMO_STAFF_EMAIL).exists()
