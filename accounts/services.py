from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from accounts.models import User
from core.exceptions import Conflict, InvalidInput


@transaction.atomic
def user_register(*, email: str, password: str, is_host: bool = False) -> tuple[User, Token]:
    email = User.objects.normalize_email(email).lower()
    candidate = User(email=email, is_host=is_host)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise InvalidInput("The password is too weak.", fields={"password": list(exc.messages)}) from None
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict(
            "An account with this email already exists.", fields={"email": ["Already registered."]}, code="email_taken"
        )
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, is_host=is_host)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same email.
        raise Conflict(
            "An account with this email already exists.", fields={"email": ["Already registered."]}, code="email_taken"
        ) from None
    token = Token.objects.create(user=user)
    return user, token


def user_login(*, email: str, password: str) -> tuple[User, Token]:
    user = authenticate(username=User.objects.normalize_email(email).lower(), password=password)
    if user is None:
        raise InvalidInput("Unable to log in with the provided credentials.", code="invalid_credentials")
    token, _ = Token.objects.get_or_create(user=user)
    return user, token


def user_logout(*, user: User) -> None:
    Token.objects.filter(user=user).delete()
