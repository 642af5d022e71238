import datetime
from decimal import Decimal

import factory
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import User
from bookings.models import Booking, BookingStatus, Payout, PayoutItem, PayoutStatus
from bookings.pricing import booking_quote
from properties.models import Amenity, Property, PropertyImage, Review

# Hashing a password per factory user costs ~100 ms; tests that log in set one explicitly.
FAST_PASSWORD_HASH = "!unusable-factory-password"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = FAST_PASSWORD_HASH
    is_host = False


class HostFactory(UserFactory):
    email = factory.Sequence(lambda n: f"host{n}@example.com")
    is_host = True


class StaffFactory(UserFactory):
    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True
    is_superuser = True


class TokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Token

    user = factory.SubFactory(UserFactory)


class AmenityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Amenity
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"amenity-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class PropertyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Property
        skip_postgeneration_save = True

    host = factory.SubFactory(HostFactory)
    title = factory.Sequence(lambda n: f"Sunny flat #{n}")
    description = "A bright place near the centre."
    city = "Lisbon"
    country = "Portugal"
    address = factory.Sequence(lambda n: f"Rua Augusta {n}")
    price_per_night = Decimal("100.00")
    cleaning_fee = Decimal("20.00")
    currency = "EUR"
    max_guests = 4
    bedrooms = 2
    bathrooms = 1

    @factory.post_generation
    def amenities(self, create, extracted, **kwargs):
        if create and extracted:
            self.amenities.set(extracted)


class PropertyImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PropertyImage

    property = factory.SubFactory(PropertyFactory)
    image = factory.django.ImageField(width=64, height=48, format="JPEG")
    position = factory.Sequence(lambda n: n)


class BookingFactory(factory.django.DjangoModelFactory):
    """A booking priced exactly as booking_create would price it."""

    class Meta:
        model = Booking

    property = factory.SubFactory(PropertyFactory)
    guest = factory.SubFactory(UserFactory)
    check_in = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=10))
    check_out = factory.LazyAttribute(lambda o: o.check_in + datetime.timedelta(days=3))
    guests = 2
    status = BookingStatus.CONFIRMED

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        quote = booking_quote(property=kwargs["property"], check_in=kwargs["check_in"], check_out=kwargs["check_out"])
        for field, value in quote.as_model_fields().items():
            kwargs.setdefault(field, value)
        return super()._create(model_class, *args, **kwargs)


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    booking = factory.SubFactory(BookingFactory, status=BookingStatus.COMPLETED)
    property = factory.LazyAttribute(lambda o: o.booking.property)
    author = factory.LazyAttribute(lambda o: o.booking.guest)
    rating = 5
    text = "Lovely stay."


class PayoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payout

    host = factory.SubFactory(HostFactory)
    amount = Decimal("100.00")
    currency = "EUR"
    status = PayoutStatus.PENDING
    period_start = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=30))
    period_end = factory.LazyFunction(timezone.localdate)
    booking_count = 1


class PayoutItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutItem

    payout = factory.SubFactory(PayoutFactory)
    booking = factory.SubFactory(BookingFactory, status=BookingStatus.COMPLETED)
    amount = factory.LazyAttribute(lambda o: o.booking.host_payout_amount)
