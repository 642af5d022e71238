import datetime
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from properties.models import Property

CENT = Decimal("0.01")


def money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BookingQuote:
    nights: int
    currency: str
    nightly_price: Decimal
    subtotal: Decimal
    cleaning_fee: Decimal
    service_fee: Decimal
    total_price: Decimal
    host_fee: Decimal
    host_payout_amount: Decimal

    def as_model_fields(self) -> dict[str, object]:
        return asdict(self)


def booking_quote(*, property: Property, check_in: datetime.date, check_out: datetime.date) -> BookingQuote:
    """Price a stay server-side: nights x nightly price + cleaning fee + guest service fee.

    The host receives subtotal + cleaning fee minus the platform commission.
    """
    nights = (check_out - check_in).days
    subtotal = money(property.price_per_night * nights)
    cleaning_fee = money(property.cleaning_fee)
    service_fee = money(subtotal * settings.BOOKING_SERVICE_FEE_RATE)
    host_fee = money((subtotal + cleaning_fee) * settings.HOST_COMMISSION_RATE)
    return BookingQuote(
        nights=nights,
        currency=property.currency,
        nightly_price=property.price_per_night,
        subtotal=subtotal,
        cleaning_fee=cleaning_fee,
        service_fee=service_fee,
        total_price=subtotal + cleaning_fee + service_fee,
        host_fee=host_fee,
        host_payout_amount=subtotal + cleaning_fee - host_fee,
    )
