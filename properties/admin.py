from django import forms
from django.contrib import admin
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.permissions import request_user
from bookings.models import Booking
from core.admin import admin_run_service
from core.exceptions import InvalidInput
from properties.image_processing import property_image_process_later
from properties.images import validate_image_upload
from properties.models import Amenity, Property, PropertyImage, Review
from properties.services import property_deactivate, property_update
from realtime.events import property_updated_emit


def _image_preview(image: PropertyImage) -> str:
    if not image.image:
        return "-"
    return format_html('<img src="{}" alt="" style="max-height:48px;max-width:96px">', image.image.url)


@admin.register(Amenity)
class AmenityAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


class PropertyImageForm(forms.ModelForm):
    """Uploads through the admin pass the same size, format and pixel checks as the API."""

    class Meta:
        model = PropertyImage
        fields = ("property", "image", "position")

    def clean_image(self) -> object:
        image = self.cleaned_data.get("image")
        if isinstance(image, UploadedFile):
            try:
                validate_image_upload(image)
            except InvalidInput as exc:
                raise forms.ValidationError(exc.message) from None
        return image


class PropertyImageInline(admin.TabularInline):
    model = PropertyImage
    form = PropertyImageForm
    fields = ("preview", "image", "position", "width", "height")
    readonly_fields = ("preview", "width", "height")
    extra = 0

    @admin.display(description="Preview")
    def preview(self, obj: PropertyImage) -> str:
        return _image_preview(obj)


@admin.register(Property)
class PropertyAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "city",
        "country",
        "host",
        "property_type",
        "price_per_night",
        "currency",
        "is_active",
        "booking_total",
        "review_count",
        "rating_average",
        "created_at",
    )
    list_select_related = ("host",)
    list_filter = ("is_active", "property_type", "currency", "city")
    search_fields = ("title", "city", "country", "host__email")
    date_hierarchy = "created_at"
    autocomplete_fields = ("host",)
    filter_horizontal = ("amenities",)
    readonly_fields = ("rating_average", "review_count", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("host", "title", "description", "property_type", "is_active")}),
        ("Location", {"fields": ("address", "city", "country", "latitude", "longitude")}),
        ("Pricing", {"fields": ("price_per_night", "cleaning_fee", "currency")}),
        ("Capacity", {"fields": ("max_guests", "bedrooms", "bathrooms", "amenities")}),
        ("Reviews", {"fields": ("rating_average", "review_count")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (PropertyImageInline,)
    actions = ("deactivate_properties", "activate_properties")
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Property]:
        # A correlated count runs only for the rows on the page; a JOIN + GROUP BY would
        # aggregate every booking of every listing before the page is cut.
        bookings = (
            Booking.objects.filter(property=OuterRef("pk"))
            .order_by()
            .values("property")
            .annotate(n=Count("pk"))
            .values("n")
        )
        queryset: QuerySet[Property] = super().get_queryset(request)
        # Property declares booking_total for booking_total() below; the plugin would add it again.
        return queryset.annotate(  # type: ignore[no-redef]
            booking_total=Coalesce(Subquery(bookings, output_field=IntegerField()), 0)
        )

    def save_model(self, request: HttpRequest, obj: Property, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            property_updated_emit(property=obj, fields=form.changed_data)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list[BaseInlineFormSet], change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # amenities and images inline
        for formset in formsets:
            for image_form in formset.forms:
                image = image_form.instance
                replaced = "image" in image_form.changed_data and not image_form.cleaned_data.get("DELETE")
                if isinstance(image, PropertyImage) and image.pk and replaced:
                    property_image_process_later(image=image)

    def has_delete_permission(self, request: HttpRequest, obj: Property | None = None) -> bool:
        # Deleting a listing means deactivating it: bookings and reviews keep pointing at it.
        return False

    @admin.display(description="Bookings")
    def booking_total(self, obj: Property) -> int:
        return obj.booking_total

    @admin.action(description="Deactivate selected properties", permissions=["change"])
    def deactivate_properties(self, request: HttpRequest, queryset: QuerySet[Property]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda property: property_deactivate(property=property, actor=request_user(request)),
            done="deactivated",
        )

    @admin.action(description="Activate selected properties", permissions=["change"])
    def activate_properties(self, request: HttpRequest, queryset: QuerySet[Property]) -> None:
        admin_run_service(
            self,
            request,
            queryset,
            lambda property: property_update(property=property, actor=request_user(request), is_active=True),
            done="activated",
        )


@admin.register(PropertyImage)
class PropertyImageAdmin(admin.ModelAdmin):
    form = PropertyImageForm
    list_display = ("__str__", "preview", "property", "position", "width", "height", "created_at")
    list_select_related = ("property",)
    list_filter = ("property__is_active",)
    search_fields = ("property__title", "property__city")
    raw_id_fields = ("property",)
    readonly_fields = ("preview", "width", "height", "created_at")
    ordering = ("-pk",)
    show_full_result_count = False

    @admin.display(description="Preview")
    def preview(self, obj: PropertyImage) -> str:
        return _image_preview(obj)

    def save_model(self, request: HttpRequest, obj: PropertyImage, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "image" in form.changed_data:
            property_image_process_later(image=obj)


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    """Reviews are written by review_create, which keeps the listing's rating summary in step.

    Staff may moderate the text; rating, stay and author stay as the guest left them, and
    there is no add or delete here because either would leave the summary stale.
    """

    list_display = ("__str__", "property", "author", "rating", "created_at")
    list_select_related = ("property", "author")
    list_filter = ("rating", "created_at")
    search_fields = ("property__title", "property__city", "author__email", "text")
    ordering = ("-pk",)
    raw_id_fields = ("property", "booking", "author")
    readonly_fields = ("property", "booking", "author", "rating", "created_at")
    fields = ("property", "booking", "author", "rating", "text", "created_at")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Review | None = None) -> bool:
        return False
