import pytest
from django.test import Client

from tests.factories import StaffFactory


@pytest.fixture
def superuser(db):
    return StaffFactory()


@pytest.fixture
def superuser_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client
