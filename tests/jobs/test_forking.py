import os

import pytest
from django.db import connection

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.subprocess


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone():
    UserFactory()
    parent_handle = connection.connection
    assert parent_handle is not None

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only, never run pytest's teardown
        code = 1
        try:
            if (
                connection.connection is None
                and User.objects.count() == 1
                and connection.connection is not parent_handle
            ):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    # The child never used (or closed) the parent's session: it still works.
    assert connection.connection is parent_handle
    assert User.objects.count() == 1
