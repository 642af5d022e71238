"""A realistic demo data set, built with bulk inserts so the full size takes seconds.

Hosts, guests, ~30 real cities, listings with amenities, two years of bookings that
never overlap per listing, reviews and the listings' rating summaries. Everything is
derived from one seed, so two runs on the same day produce the same rows.
"""

import datetime
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction

from accounts.models import User, UserTier
from bookings.models import Booking, BookingStatus
from bookings.pricing import booking_quote
from demo.data import (
    ADJECTIVES,
    AMENITIES,
    CITIES,
    COMMON_AMENITIES,
    DEMO_EMAIL_DOMAIN,
    DEMO_PASSWORD,
    FIRST_NAMES,
    LAST_NAMES,
    PROPERTY_TYPES,
    RATING_WEIGHTS,
    REVIEW_SHARE,
    REVIEW_TEXTS,
    SETTINGS,
    STAY_LENGTHS,
    STREETS,
)
from properties.models import Amenity, Property, PropertyType, Review
from properties.services import property_ratings_refresh

BATCH_SIZE = 5000
MAX_NIGHTS = max(STAY_LENGTHS)
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class DemoSummary:
    hosts: int
    guests: int
    amenities: int
    properties: int
    bookings: int
    reviews: int


class DemoSeedError(ValueError):
    pass


@dataclass(frozen=True)
class _Listing:
    property: Property
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class _Stay:
    listing: int
    check_in: datetime.date
    check_out: datetime.date


def _guests_text(max_guests: int) -> str:
    return "one guest" if max_guests == 1 else f"up to {max_guests} guests"


def demo_seed(
    *,
    hosts: int,
    guests: int,
    properties: int,
    bookings: int,
    seed: int,
    today: datetime.date,
    progress: Callable[[str], None] = lambda line: None,
) -> DemoSummary:
    """Create the demo data set. Refuses to run twice: demo e-mail addresses are unique."""
    window_start = _add_months(today, -18)
    window_end = _add_months(today, 6)
    window_days = (window_end - window_start).days
    if properties and not hosts:
        raise DemoSeedError("Properties need at least one host.")
    if bookings and not (properties and guests):
        raise DemoSeedError("Bookings need at least one property and one guest.")
    # Per-listing counts vary by up to 3x the average; each must fit the two-year window.
    if bookings > properties * (window_days // 3):
        raise DemoSeedError(f"At most {properties * (window_days // 3)} bookings fit {properties} properties.")
    if User.objects.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}").exists():
        raise DemoSeedError("Demo users already exist; flush the database first.")

    rng = random.Random(seed)
    now = _now_for(today)
    host_rows, guest_rows = _seed_users(rng=rng, hosts=hosts, guests=guests, now=now, progress=progress)
    amenity_ids = _seed_amenities(progress=progress)
    listings = _seed_properties(
        rng=rng, count=properties, host_ids=host_rows, amenity_ids=amenity_ids, now=now, progress=progress
    )
    reviewable = _seed_bookings(
        rng=rng,
        count=bookings,
        listings=listings,
        guest_ids=guest_rows,
        window_start=window_start,
        window_days=window_days,
        today=today,
        now=now,
        progress=progress,
    )
    reviews = _seed_reviews(rng=rng, reviewable=reviewable, now=now, progress=progress)
    _analyze([User, Amenity, Property, Property.amenities.through, Booking, Review], progress=progress)
    return DemoSummary(
        hosts=len(host_rows),
        guests=len(guest_rows),
        amenities=len(amenity_ids),
        properties=len(listings),
        bookings=bookings,
        reviews=reviews,
    )


def _now_for(today: datetime.date) -> datetime.datetime:
    real_now = datetime.datetime.now(tz=datetime.UTC)
    if real_now.date() == today:
        return real_now
    return datetime.datetime.combine(today, datetime.time(12), tzinfo=datetime.UTC)


def _add_months(day: datetime.date, months: int) -> datetime.date:
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return day.replace(year=year, month=month + 1, day=min(day.day, 28))


def _moment(rng: random.Random, day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(
        day, datetime.time(rng.randrange(7, 23), rng.randrange(60), rng.randrange(60)), tzinfo=datetime.UTC
    )


@contextmanager
def _explicit_timestamps(model: type[models.Model]) -> Iterator[None]:
    """Let bulk_create keep the created_at/updated_at values we set, so history looks real.

    auto_now/auto_now_add would stamp every row with the seeding time; the command runs
    alone in its process, so switching them off on the field for the insert is safe.
    """
    fields = [
        f for f in model._meta.concrete_fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for field in fields:
        field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def _bulk_insert(
    model: type[models.Model],
    objs: list[models.Model],
    *,
    label: str,
    done: int,
    total: int,
    progress: Callable[[str], None],
) -> None:
    with _explicit_timestamps(model):
        model.objects.bulk_create(objs, batch_size=BATCH_SIZE)
    progress(f"{label} {done + len(objs)}/{total}")


@transaction.atomic
def _seed_users(
    *, rng: random.Random, hosts: int, guests: int, now: datetime.datetime, progress: Callable[[str], None]
) -> tuple[list[int], list[int]]:
    password = make_password(DEMO_PASSWORD)  # hashed once: per-user hashing would take minutes
    users: list[User] = []
    host_width, guest_width = max(3, len(str(hosts))), max(4, len(str(guests)))
    for n in range(1, hosts + 1):
        tier = rng.choices([UserTier.FREE, UserTier.PRO, UserTier.ENTERPRISE], weights=[60, 30, 10])[0]
        users.append(_demo_user(rng, f"host{n:0{host_width}d}", password, now, is_host=True, tier=tier))
    for n in range(1, guests + 1):
        tier = rng.choices([UserTier.FREE, UserTier.PRO], weights=[90, 10])[0]
        users.append(_demo_user(rng, f"guest{n:0{guest_width}d}", password, now, is_host=False, tier=tier))
    User.objects.bulk_create(users, batch_size=BATCH_SIZE)
    progress(f"users {len(users)}/{hosts + guests}")
    ids = [u.pk for u in users]
    return ids[:hosts], ids[hosts:]


def _demo_user(
    rng: random.Random, local_part: str, password: str, now: datetime.datetime, *, is_host: bool, tier: str
) -> User:
    return User(
        email=f"{local_part}@{DEMO_EMAIL_DOMAIN}",
        password=password,
        first_name=rng.choice(FIRST_NAMES),
        last_name=rng.choice(LAST_NAMES),
        is_host=is_host,
        tier=tier,
        date_joined=now - datetime.timedelta(days=rng.randrange(1100, 1500) if is_host else rng.randrange(640, 1400)),
    )


@transaction.atomic
def _seed_amenities(*, progress: Callable[[str], None]) -> dict[str, int]:
    Amenity.objects.bulk_create([Amenity(slug=s, name=n) for s, n in AMENITIES], ignore_conflicts=True)
    ids = dict(Amenity.objects.filter(slug__in=[s for s, _ in AMENITIES]).values_list("slug", "id"))
    progress(f"amenities {len(ids)}/{len(AMENITIES)}")
    return ids


@transaction.atomic
def _seed_properties(
    *,
    rng: random.Random,
    count: int,
    host_ids: list[int],
    amenity_ids: dict[str, int],
    now: datetime.datetime,
    progress: Callable[[str], None],
) -> list[_Listing]:
    type_names = list(PROPERTY_TYPES)
    type_weights = [PROPERTY_TYPES[t][0] for t in type_names]
    # A few big cities get most listings, as on real platforms.
    city_weights = [3 if i < 10 else 1.5 if i < 20 else 1 for i in range(len(CITIES))]
    city_weights[0] = 4  # Lisbon: the benchmark's search city always has plenty
    optional_amenities = [slug for slug in amenity_ids if slug not in COMMON_AMENITIES]
    # Most hosts run a few listings; a handful of property managers run a few percent of all.
    host_weights = list(itertools.accumulate(min(rng.paretovariate(1.5), 20.0) for _ in host_ids))
    created: list[_Listing] = []
    Through = Property.amenities.through
    for start in range(0, count, BATCH_SIZE):
        batch: list[_Listing] = []
        for n in range(start, min(start + BATCH_SIZE, count)):
            city, country, currency, lat, lng, factor = rng.choices(CITIES, weights=city_weights)[0]
            kind = rng.choices(type_names, weights=type_weights)[0]
            _, base, guest_range, bedroom_range = PROPERTY_TYPES[kind]
            bedrooms = rng.randint(*bedroom_range)
            created_at = now - datetime.timedelta(days=rng.randrange(650, 1100), seconds=rng.randrange(86400))
            prop = Property(
                host_id=host_ids[n] if n < len(host_ids) else rng.choices(host_ids, cum_weights=host_weights)[0],
                title=f"{rng.choice(ADJECTIVES)} {PropertyType(kind).label.lower()} {rng.choice(SETTINGS)}",
                property_type=kind,
                city=city,
                country=country,
                address=f"{rng.randrange(1, 250)} {rng.choice(STREETS)}, {city}",
                latitude=Decimal(f"{lat + rng.gauss(0, 0.03):.6f}"),
                longitude=Decimal(f"{lng + rng.gauss(0, 0.04):.6f}"),
                price_per_night=Decimal(f"{base * factor * rng.uniform(0.7, 1.45):.2f}"),
                cleaning_fee=Decimal(f"{rng.choice([0, 15, 20, 25, 30, 40, 60]) * (1 + bedrooms // 3):.2f}"),
                currency=currency,
                max_guests=rng.randint(*guest_range),
                bedrooms=bedrooms,
                bathrooms=max(1, bedrooms - rng.randrange(2)),
                is_active=rng.random() > 0.02,
                created_at=created_at,
                updated_at=created_at + datetime.timedelta(days=rng.randrange(0, 400)),
            )
            # Written once max_guests is drawn, so the text never promises more than the listing takes.
            prop.description = f"A {PropertyType(kind).label.lower()} in {city} for {_guests_text(prop.max_guests)}."
            batch.append(_listing(prop))
        _bulk_insert(
            Property,
            [listing.property for listing in batch],
            label="properties",
            done=start,
            total=count,
            progress=progress,
        )
        links = []
        for listing in batch:
            slugs = [s for s in COMMON_AMENITIES if s in amenity_ids and rng.random() < 0.9]
            slugs += rng.sample(optional_amenities, rng.randint(2, 10))
            links += [Through(property_id=listing.property.pk, amenity_id=amenity_ids[s]) for s in slugs]
        Through.objects.bulk_create(links, batch_size=BATCH_SIZE)
        created += batch
    return created


def _listing(prop: Property) -> _Listing:
    return _Listing(property=prop, lengths=tuple(range(1, MAX_NIGHTS + 1)))


@transaction.atomic
def _seed_bookings(
    *,
    rng: random.Random,
    count: int,
    listings: list[_Listing],
    guest_ids: list[int],
    window_start: datetime.date,
    window_days: int,
    today: datetime.date,
    now: datetime.datetime,
    progress: Callable[[str], None],
) -> list[Booking]:
    """Insert bookings listing by listing; returns the completed stays chosen to be reviewed."""
    quotes: dict[tuple[int, int], dict[str, object]] = {}
    reviewable: list[Booking] = []
    batch: list[Booking] = []
    done = 0
    for stay in _stays(rng=rng, count=count, listings=listings, window_start=window_start, days=window_days):
        prop = listings[stay.listing].property
        key = (stay.listing, (stay.check_out - stay.check_in).days)
        if key not in quotes:
            quote = booking_quote(property=prop, check_in=stay.check_in, check_out=stay.check_out)
            quotes[key] = quote.as_model_fields()
        booking = _booking(rng=rng, prop=prop, stay=stay, guest_id=rng.choice(guest_ids), today=today, now=now)
        for name, value in quotes[key].items():
            setattr(booking, name, value)
        batch.append(booking)
        if booking.status == BookingStatus.COMPLETED and rng.random() < REVIEW_SHARE:
            reviewable.append(booking)
        if len(batch) == BATCH_SIZE:
            _bulk_insert(
                Booking,
                batch,
                label="bookings",
                done=done,
                total=count,
                progress=progress,
            )
            done += len(batch)
            batch = []
    if batch:
        _bulk_insert(
            Booking,
            batch,
            label="bookings",
            done=done,
            total=count,
            progress=progress,
        )
    return reviewable


def _stays(
    *, rng: random.Random, count: int, listings: list[_Listing], window_start: datetime.date, days: int
) -> Iterator[_Stay]:
    """Exactly ``count`` stays over the listings, in order and never overlapping within a listing."""
    if not count:
        return
    popularity = [0.5 + rng.random() for _ in listings]
    total = sum(popularity)
    shares = [count * p / total for p in popularity]
    per_listing = [int(s) for s in shares]
    by_remainder = sorted(range(len(listings)), key=lambda i: shares[i] - per_listing[i], reverse=True)
    for i in by_remainder[: count - sum(per_listing)]:
        per_listing[i] += 1
    for index, k in enumerate(per_listing):
        if not k:
            continue
        # Busy listings get shorter stays so that k of them fit the window with room to spare.
        usable = [n for n in listings[index].lengths if n <= max(1, days // k - 1)]
        closest = {want: min(usable, key=lambda n, want=want: abs(n - want)) for want in set(STAY_LENGTHS)}
        lengths = [closest[rng.choice(STAY_LENGTHS)] for _ in range(k)]
        free = days - sum(lengths)
        weights = [rng.random() for _ in range(k + 1)]
        scale = free / sum(weights)
        cursor = window_start
        for nights, weight in zip(lengths, weights, strict=False):
            cursor += int(weight * scale) * DAY
            check_out = cursor + nights * DAY
            yield _Stay(listing=index, check_in=cursor, check_out=check_out)
            cursor = check_out


def _booking(
    *, rng: random.Random, prop: Property, stay: _Stay, guest_id: int, today: datetime.date, now: datetime.datetime
) -> Booking:
    created_at = min(now, _moment(rng, stay.check_in - datetime.timedelta(days=rng.randrange(1, 90))))
    confirmed_at = cancelled_at = None
    roll = rng.random()
    if stay.check_out <= today:
        status = BookingStatus.CANCELLED if roll < 0.1 else BookingStatus.COMPLETED
    elif stay.check_in <= today:
        status = BookingStatus.CONFIRMED
    else:
        status = (
            BookingStatus.CANCELLED if roll < 0.1 else BookingStatus.PENDING if roll < 0.25 else BookingStatus.CONFIRMED
        )
    if status == BookingStatus.CANCELLED:
        cancelled_at = min(now, created_at + (_moment(rng, stay.check_in) - created_at) * rng.random())
    elif status != BookingStatus.PENDING:
        confirmed_at = min(now, created_at + datetime.timedelta(minutes=rng.randrange(1, 720)))
    guests = min(prop.max_guests, rng.choice((1, 2, 2, 2, 3, 4, 5, 6)))
    return Booking(
        property_id=prop.pk,
        guest_id=guest_id,
        check_in=stay.check_in,
        check_out=stay.check_out,
        guests=guests,
        status=status,
        created_at=created_at,
        updated_at=max(filter(None, (created_at, confirmed_at, cancelled_at))),
        confirmed_at=confirmed_at,
        cancelled_at=cancelled_at,
    )


@transaction.atomic
def _seed_reviews(
    *, rng: random.Random, reviewable: list[Booking], now: datetime.datetime, progress: Callable[[str], None]
) -> int:
    ratings, weights = list(RATING_WEIGHTS), list(RATING_WEIGHTS.values())
    reviews: list[Review] = []
    for booking in reviewable:
        rating = rng.choices(ratings, weights=weights)[0]
        reviews.append(
            Review(
                property_id=booking.property_id,
                booking_id=booking.pk,
                author_id=booking.guest_id,
                rating=rating,
                text=rng.choice(REVIEW_TEXTS[rating]),
                created_at=min(now, _moment(rng, booking.check_out + datetime.timedelta(days=rng.randrange(0, 14)))),
            )
        )
    for start in range(0, len(reviews), BATCH_SIZE):
        _bulk_insert(
            Review,
            reviews[start : start + BATCH_SIZE],
            label="reviews",
            done=start,
            total=len(reviews),
            progress=progress,
        )
    property_ratings_refresh(property_ids=None)
    progress("rating summaries updated")
    return len(reviews)


def _analyze(seeded: list[type[models.Model]], *, progress: Callable[[str], None]) -> None:
    """Refresh planner statistics after the bulk load.

    Until autovacuum gets to them, PostgreSQL plans as if the tables were empty: on a fresh
    seed the host dashboard's joins went through the exclusion constraint's GiST index, 20x slower.
    """
    with connection.cursor() as cursor:
        for model in seeded:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    progress("planner statistics updated")
