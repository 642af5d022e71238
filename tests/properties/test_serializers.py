from decimal import Decimal

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from properties import selectors
from properties.serializers import PropertyDetailOutputSerializer, PropertyListOutputSerializer
from tests.factories import AmenityFactory, PropertyFactory, PropertyImageFactory

pytestmark = pytest.mark.django_db


def test_search_result_rendering_matches_its_declared_fields():
    """The hand-written rendering of a search result must say what its schema (the declared fields) says."""
    wifi, pool = AmenityFactory(slug="wifi", name="Wi-Fi"), AmenityFactory(slug="pool", name="Pool")
    rich = PropertyFactory(
        amenities=[wifi, pool],
        latitude=Decimal("38.7"),
        longitude=Decimal("-9.14"),
        price_per_night=Decimal("80"),
        cleaning_fee=Decimal("0"),
        rating_average=Decimal("4.5"),
        review_count=2,
    )
    PropertyImageFactory(property=rich, position=0)
    bare = PropertyFactory(latitude=None, longitude=None, rating_average=None)
    page = list(selectors.property_search(user=None).filter(pk__in=[rich.pk, bare.pk]).order_by("pk"))
    selectors.property_list_attach_amenities(page)
    context = {"request": APIRequestFactory().get("/api/v1/properties/")}

    for listing in page:
        serializer = PropertyListOutputSerializer(context=context)
        written_out = serializer.to_representation(listing)
        generic = serializers.Serializer.to_representation(serializer, listing)

        assert written_out == generic
        assert list(written_out) == list(generic)
    rendered = PropertyListOutputSerializer(page[0], context=context).data
    assert rendered["price_per_night"] == "80.00"
    assert rendered["cleaning_fee"] == "0.00"
    assert rendered["latitude"] == "38.700000"
    assert rendered["rating_average"] == "4.50"
    assert rendered["amenities"] == ["pool", "wifi"]
    assert rendered["cover_image"].startswith("http://testserver/")


def test_detail_rendering_matches_its_declared_fields():
    """The hand-written rendering of one listing must say what its schema (the declared fields) says."""
    listing = PropertyFactory(amenities=[AmenityFactory(slug="wifi", name="Wi-Fi")], latitude=None)
    PropertyImageFactory(property=listing, position=0)
    shown = selectors.property_detail(user=None).get(pk=listing.pk)
    selectors.property_attach_relations(shown)
    serializer = PropertyDetailOutputSerializer(context={"request": APIRequestFactory().get("/")})

    written_out = serializer.to_representation(shown)
    generic = serializers.Serializer.to_representation(serializer, shown)

    assert written_out == generic
    assert list(written_out) == list(generic)
    assert written_out["amenities"] == [{"slug": "wifi", "name": "Wi-Fi"}]
    assert written_out["images"][0]["position"] == 0
