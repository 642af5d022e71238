import datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from properties.models import Property, PropertyType
from properties.selectors import amenity_slugs_unknown, property_available_between, property_with_all_amenities

MAX_SEARCH_STAY_NIGHTS = 365


MAX_AMENITY_FILTERS = 20
MAX_BULK_IDS = 100


class CommaSeparatedField(forms.CharField):
    max_items = MAX_AMENITY_FILTERS

    # A list where CharField gives a string: the field's whole point.
    def to_python(self, value: str | None) -> list[str]:  # type: ignore[override]
        value = super().to_python(value) or ""
        if "\x00" in value:  # checked here: the list this returns hides NULs from CharField's validator
            raise forms.ValidationError("Null characters are not allowed.")
        return [item.strip() for item in value.split(",") if item.strip()] if value else []

    def validate(self, value: list[str]) -> None:
        if len(value) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} values.")


class CommaSeparatedIdsField(CommaSeparatedField):
    max_items = MAX_BULK_IDS

    def to_python(self, value: str | None) -> list[int]:  # type: ignore[override]
        items = super().to_python(value)
        if not all(item.isdigit() and 0 < int(item) < 2**63 for item in items):
            raise forms.ValidationError("Give comma-separated positive integer ids.")
        return [int(item) for item in items]


class CommaSeparatedFilter(django_filters.Filter):
    field_class = CommaSeparatedField


class CommaSeparatedIdsFilter(django_filters.Filter):
    field_class = CommaSeparatedIdsField


class StableOrderingFilter(django_filters.OrderingFilter):
    """Adds the primary key as a tie-breaker so equal prices never shuffle between pages."""

    def filter(self, qs: QuerySet[Property], value: list[str] | None) -> QuerySet[Property]:
        qs = super().filter(qs, value)
        return qs.order_by(*qs.query.order_by, "-id") if value else qs


class PropertySearchForm(forms.Form):
    def clean_amenities(self) -> list[str]:
        slugs: list[str] = self.cleaned_data["amenities"]
        unknown = amenity_slugs_unknown(slugs) if slugs else []
        if unknown:
            raise forms.ValidationError(f"Unknown amenity: {', '.join(unknown)}.")
        return slugs

    def clean(self) -> dict[str, Any]:
        # An empty number, date or choice is not what the schema allows; only text may be blank.
        for name, field in self.fields.items():
            if self.data.get(name) == "" and not isinstance(field, forms.CharField):
                self.add_error(name, "May not be empty.")
        data = super().clean() or {}
        check_in, check_out = data.get("check_in"), data.get("check_out")
        if (check_in is None) != (check_out is None) and not self.errors:
            missing = "check_out" if check_out is None else "check_in"
            self.add_error(missing, "check_in and check_out must be given together.")
        elif check_in and check_out:
            if check_out <= check_in:
                self.add_error("check_out", "Must be after check_in.")
            elif check_in < timezone.localdate():
                self.add_error("check_in", "Must be today or later.")
            elif (check_out - check_in).days > MAX_SEARCH_STAY_NIGHTS:
                self.add_error("check_out", f"A search spans at most {MAX_SEARCH_STAY_NIGHTS} nights.")
        min_price, max_price = data.get("min_price"), data.get("max_price")
        if min_price is not None and max_price is not None and min_price > max_price:
            self.add_error("max_price", "Must be greater than or equal to min_price.")
        return data


class PropertySearchFilter(django_filters.FilterSet):
    city = django_filters.CharFilter(field_name="city", lookup_expr="iexact", max_length=100)
    country = django_filters.CharFilter(field_name="country", lookup_expr="iexact", max_length=100)
    property_type = django_filters.ChoiceFilter(choices=PropertyType.choices)
    min_price = django_filters.NumberFilter(
        field_name="price_per_night", lookup_expr="gte", min_value=0, max_digits=10, decimal_places=2
    )
    max_price = django_filters.NumberFilter(
        field_name="price_per_night", lookup_expr="lte", min_value=0, max_digits=10, decimal_places=2
    )
    guests = django_filters.NumberFilter(field_name="max_guests", lookup_expr="gte", min_value=1, max_value=100)
    bedrooms = django_filters.NumberFilter(field_name="bedrooms", lookup_expr="gte", min_value=0, max_value=100)
    amenities = CommaSeparatedFilter(
        method="filter_amenities", help_text="Comma-separated amenity slugs; all must match."
    )
    ids = CommaSeparatedIdsFilter(
        method="filter_ids", help_text=f"Bulk fetch: up to {MAX_BULK_IDS} comma-separated property ids."
    )
    check_in = django_filters.DateFilter(method="filter_noop")
    check_out = django_filters.DateFilter(method="filter_noop")
    ordering = StableOrderingFilter(
        fields=(("price_per_night", "price"), ("created_at", "created"), ("rating_average", "rating")),
    )

    class Meta:
        model = Property
        form = PropertySearchForm
        fields: list[str] = []

    def get_form_class(self) -> type[forms.Form]:
        # django-filter builds a form class (and every filter's form field) per request, about
        # a tenth of an uncached search. The filters are static and a form deep-copies its
        # class's fields, so one class serves every request.
        form_class: type[forms.Form] | None = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            type(self)._form_class = form_class
        return form_class

    def filter_amenities(self, queryset: QuerySet[Property], name: str, value: list[str]) -> QuerySet[Property]:
        return property_with_all_amenities(queryset, slugs=value) if value else queryset

    def filter_ids(self, queryset: QuerySet[Property], name: str, value: list[int]) -> QuerySet[Property]:
        return queryset.filter(pk__in=value) if value else queryset

    def filter_noop(self, queryset: QuerySet[Property], name: str, value: datetime.date) -> QuerySet[Property]:
        return queryset  # applied together in filter_queryset, once both dates are validated

    def filter_queryset(self, queryset: QuerySet[Property]) -> QuerySet[Property]:
        queryset = super().filter_queryset(queryset)
        check_in: datetime.date | None = self.form.cleaned_data.get("check_in")
        check_out: datetime.date | None = self.form.cleaned_data.get("check_out")
        if check_in and check_out:
            queryset = property_available_between(queryset, check_in=check_in, check_out=check_out)
        return queryset
