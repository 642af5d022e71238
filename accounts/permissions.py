"""The signed-in user of a request, typed as a `User`."""

from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated

from accounts.models import User


def request_user(request: HttpRequest) -> User:
    """`request.user` on a view whose permissions require a signed-in user; a 401 if there is none.

    The permission classes have already turned anonymous requests away; this narrows the type
    (`User | AnonymousUser`) for the services, which take a `User`.
    """
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
