"""Image processing on upload: the API answers at once, the job strips, scales and thumbnails."""

import io

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from PIL import Image

from jobs.models import DeadLetter, JobRecord, JobStatus
from jobs.priorities import Priority
from jobs.testing import run_jobs
from properties.image_processing import THUMBNAIL_SIZES, process_image_bytes
from properties.models import PropertyImage
from properties.tasks import process_property_image
from tests.factories import PropertyFactory

pytestmark = pytest.mark.django_db

GPS_IFD = 0x8825
ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF: the camera was turned; show the image rotated 90° clockwise


def photo(fmt: str = "JPEG", size=(1200, 800), *, exif: bool = True, mode: str = "RGB") -> bytes:
    image = Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30))
    buffer = io.BytesIO()
    options = {}
    if exif:
        data = Image.Exif()
        data[ORIENTATION] = ROTATED_90_CW
        data[0x010F] = "CameraMaker"
        data.get_ifd(GPS_IFD)[2] = (38.0, 42.0, 36.0)  # GPSLatitude: where the photographer stood
        options["exif"] = data.tobytes()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def listing(host):
    return PropertyFactory(host=host)


def upload(client, listing, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            f"/api/v1/properties/{listing.pk}/images/",
            {"image": SimpleUploadedFile(name, data, content_type=content_type)},
            format="multipart",
        )


def test_upload_answers_with_the_original_and_thumbnails_follow(host_client, listing, settings):
    settings.PROPERTY_IMAGE_MAX_DIMENSION = 1000

    response = upload(host_client, listing, photo())

    assert response.status_code == 201
    body = response.json()
    assert body["thumbnail_small_url"] is None and body["thumbnail_medium_url"] is None
    assert body["processed_at"] is None
    assert (body["width"], body["height"]) == (1200, 800)
    job = JobRecord.objects.get()
    assert (job.task, job.priority, job.args) == (
        "properties.tasks.process_property_image",
        Priority.NORMAL,
        [body["id"]],
    )

    uploaded_name = PropertyImage.objects.get(pk=body["id"]).image.name

    run_jobs()

    image = PropertyImage.objects.get(pk=body["id"])
    assert image.processed_at is not None
    # Rotated as EXIF said, then scaled to fit 1000 px: 800x1200 -> 667x1000.
    assert (image.width, image.height) == (667, 1000)
    with default_storage.open(image.image.name) as file, Image.open(file) as processed:
        assert processed.size == (667, 1000)
        assert processed.format == "JPEG"
        assert not processed.getexif()  # no GPS position, no camera, no orientation left
    for name, longest in THUMBNAIL_SIZES.items():
        with default_storage.open(getattr(image, f"thumbnail_{name}").name) as file, Image.open(file) as thumbnail:
            assert thumbnail.format == "JPEG"
            assert max(thumbnail.size) == longest
            assert thumbnail.size[1] > thumbnail.size[0]  # portrait, like the oriented original
    assert not default_storage.exists(uploaded_name)  # the file with metadata is gone

    detail = host_client.get(f"/api/v1/properties/{listing.pk}/").json()
    served = detail["images"][0]
    assert served["thumbnail_small_url"].endswith("-320.jpg")
    assert served["thumbnail_medium_url"].endswith("-800.jpg")
    assert served["url"] != body["url"]


def follow(client, url: str):
    """GET a URL the API handed out: its redirect, then the media file the storage holds."""
    response = client.get(url)
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith("http://testserver/media/")
    return response, location.removeprefix("http://testserver/media/")


def test_the_url_an_upload_answers_with_still_resolves_after_processing(host_client, anon_client, listing):
    body = upload(host_client, listing, photo()).json()
    assert body["url"] == f"http://testserver/api/v1/properties/{listing.pk}/images/{body['id']}/file/"
    _, before = follow(anon_client, body["url"])
    assert default_storage.exists(before)

    run_jobs()

    response, after = follow(anon_client, body["url"])
    assert after != before  # the processed copy, under its new name
    assert default_storage.exists(after)
    assert not default_storage.exists(before)
    assert response["Cache-Control"] == "no-cache"
    image = PropertyImage.objects.get(pk=body["id"])
    assert after == image.image.name
    # Once processed, the API hands out the file itself: it never moves again.
    detail = anon_client.get(f"/api/v1/properties/{listing.pk}/").json()
    assert detail["images"][0]["url"] == f"http://testserver/media/{image.image.name}"
    assert detail["cover_image"] == detail["images"][0]["url"]


def test_the_image_address_of_an_inactive_listing_is_a_404_for_others(host_client, anon_client, listing):
    body = upload(host_client, listing, photo()).json()
    listing.is_active = False
    listing.save(update_fields=["is_active"])

    assert anon_client.get(body["url"]).status_code == 404
    assert host_client.get(body["url"]).status_code == 302  # the host still sees their own listing
    other = PropertyFactory()
    assert anon_client.get(f"/api/v1/properties/{other.pk}/images/{body['id']}/file/").status_code == 404


def test_png_with_transparency_keeps_its_format_and_gets_white_jpeg_thumbnails(host_client, listing):
    response = upload(host_client, listing, photo("PNG", (400, 300), exif=False, mode="RGBA"), "a.png", "image/png")
    run_jobs()

    image = PropertyImage.objects.get(pk=response.json()["id"])
    assert image.image.name.endswith(".png")
    assert (image.width, image.height) == (400, 300)  # already small enough: not enlarged
    with default_storage.open(image.thumbnail_small.name) as file, Image.open(file) as thumbnail:
        assert thumbnail.mode == "RGB"
        assert thumbnail.size == (320, 240)
        assert thumbnail.getpixel((10, 10))[1] > 100  # half-transparent red on white, not on black


def test_processing_twice_is_a_no_op(host_client, listing):
    image_id = upload(host_client, listing, photo()).json()["id"]
    run_jobs()
    image = PropertyImage.objects.get(pk=image_id)

    assert process_property_image(image_id) == "already processed"

    image.refresh_from_db()
    assert PropertyImage.objects.get(pk=image_id).thumbnail_small.name == image.thumbnail_small.name


def test_a_file_that_is_not_an_image_any_more_dead_letters_the_job(host_client, listing):
    image_id = upload(host_client, listing, photo()).json()["id"]
    image = PropertyImage.objects.get(pk=image_id)
    with default_storage.open(image.image.name, "wb") as file:
        file.write(b"not an image at all")

    run_jobs()

    job = JobRecord.objects.get()
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)  # permanent: no point retrying
    assert DeadLetter.objects.get().error.startswith("PermanentError: Not a valid image")
    image.refresh_from_db()
    assert image.processed_at is None and not image.thumbnail_small


def test_a_deleted_image_is_skipped():
    assert process_property_image(987654) == "skipped: the image was deleted"


def test_process_image_bytes_refuses_too_many_pixels():
    from jobs.errors import PermanentError

    with pytest.raises(PermanentError, match="too many pixels"):
        process_image_bytes(photo(size=(200, 200), exif=False), max_dimension=100, max_pixels=100 * 100)


def test_an_image_uploaded_or_replaced_in_the_admin_is_processed_too(listing, client):
    from django.urls import reverse

    from tests.factories import StaffFactory

    client.force_login(StaffFactory())
    image = PropertyImage.objects.create(
        property=listing, image=SimpleUploadedFile("a.jpg", photo(exif=False), content_type="image/jpeg"), position=0
    )
    PropertyImage.objects.filter(pk=image.pk).update(processed_at="2026-01-01T00:00:00Z", thumbnail_small="x.jpg")

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            reverse("admin:properties_propertyimage_change", args=[image.pk]),
            {
                "property": listing.pk,
                "position": 0,
                "image": SimpleUploadedFile("b.png", photo("PNG", (500, 400), exif=False), content_type="image/png"),
            },
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    image.refresh_from_db()
    assert image.processed_at is None and not image.thumbnail_small  # the old thumbnails showed another picture
    run_jobs()
    image.refresh_from_db()
    assert image.processed_at is not None and image.image.name.endswith(".png")
    assert (image.width, image.height) == (500, 400)
