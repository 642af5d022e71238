from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower

from caching.tracking import InvalidatingQuerySet


class UserTier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


# mypy cannot follow a base class made by a call: it checks against BaseUserManager's own types.
if TYPE_CHECKING:
    UserManagerBase = BaseUserManager["User"]
else:
    UserManagerBase = BaseUserManager.from_queryset(InvalidatingQuerySet)


class UserManager(UserManagerBase):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields: Any) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user: User = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> "User":
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: Any) -> "User":
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser must have is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    username = None  # type: ignore[assignment]  # email is the login; AbstractUser declares a str
    email = models.EmailField("email address", unique=True)
    is_host = models.BooleanField(default=False)
    tier = models.CharField(max_length=16, choices=UserTier.choices, default=UserTier.FREE)

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]  # an email-login manager, not auth's

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(tier__in=UserTier.values), name="user_tier_valid"),
        ]
        indexes = [models.Index(fields=["is_host"], name="user_is_host_idx")]

    def __str__(self) -> str:
        return self.email
