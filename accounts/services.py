from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework.authtoken.models import Token

from accounts.models import User
from core.exceptions import Conflict, InvalidInput
from core.mail import send_templated_email
from jobs.services import enqueue

# By name: accounts.tasks imports this module.
RESET_EMAIL_TASK = "accounts.tasks.send_password_reset_email"


@transaction.atomic
def user_register(*, email: str, password: str, is_host: bool = False) -> tuple[User, Token]:
    email = User.objects.normalize_email(email).lower()
    _validated_password(password, user=User(email=email, is_host=is_host), field="password")
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


def _validated_password(password: str, *, user: User, field: str) -> str:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise InvalidInput("The password is too weak.", fields={field: list(exc.messages)}) from None
    return password


def _password_set(*, user: User, password: str) -> Token:
    """Set the password, end every token and session of the account, and issue one new token.

    Sessions end by themselves: Django checks each against a hash of the password.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    user_logout(user=user)
    return Token.objects.create(user=user)


@transaction.atomic
def user_password_change(*, user: User, current_password: str, new_password: str) -> Token:
    """Change a password the caller proved they know; every other token and session is revoked."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.check_password(current_password):
        raise InvalidInput(
            "The current password is wrong.", fields={"current_password": ["Wrong password."]}, code="wrong_password"
        )
    _validated_password(new_password, user=user, field="new_password")
    return _password_set(user=user, password=new_password)


def _resettable_user(email: str) -> User | None:
    email = User.objects.normalize_email(email).lower()
    return User.objects.filter(email__iexact=email, is_active=True).first()


def user_password_reset_request(*, email: str) -> None:
    """Email a reset token if an active account has this address; the caller learns nothing either way."""
    user = _resettable_user(email)
    if user is None or not user.has_usable_password():
        return
    # The token is made when the email is sent, so it is as fresh as the message.
    enqueue(RESET_EMAIL_TASK, user.pk, dedupe_key=f"password_reset:{user.pk}")


def password_reset_email_send(*, user_id: int) -> str:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return "skipped: no active account"
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = settings.PASSWORD_RESET_URL.format(uid=uid, token=token) if settings.PASSWORD_RESET_URL else ""
    send_templated_email(
        to=[user.email],
        subject="Reset your Staybase password",
        template="password_reset",
        context={
            "user": user,
            "uid": uid,
            "token": token,
            "link": link,
            "valid_days": round(settings.PASSWORD_RESET_TIMEOUT / 86400, 1),
        },
    )
    return "sent"


INVALID_RESET_LINK = "The reset link is invalid or has expired."


@transaction.atomic
def user_password_reset_confirm(*, uid: str, token: str, new_password: str) -> tuple[User, Token]:
    """Set a new password with a token from the reset email (good once: it signs the old password hash)."""
    try:
        user_id = int(force_str(urlsafe_base64_decode(uid)))
    except (ValueError, TypeError, OverflowError):
        user_id = None
    user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first() if user_id else None
    if user is None or not default_token_generator.check_token(user, token):
        raise InvalidInput(INVALID_RESET_LINK, fields={"token": [INVALID_RESET_LINK]}, code="invalid_reset_token")
    _validated_password(new_password, user=user, field="new_password")
    return user, _password_set(user=user, password=new_password)
