"""Processing of uploaded listing images, run as a job right after the upload commits.

The API answers the upload at once with the original; this job then validates the file
again (it may have been replaced on disk, and the admin uploads too), applies the EXIF
orientation, re-encodes it without metadata (no camera GPS position is served), scales it
to fit ``PROPERTY_IMAGE_MAX_DIMENSION`` and writes two JPEG thumbnails. The processed
original gets a new name, so no cache keeps serving the file with metadata.
"""

import io
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from jobs.errors import PermanentError
from jobs.services import enqueue
from properties.images import ALLOWED_IMAGE_FORMATS, IMAGE_EXTENSIONS
from properties.models import PropertyImage

# By name: properties.tasks imports this module.
PROCESS_IMAGE_TASK = "properties.tasks.process_property_image"
# Longest side in pixels; a card in search results and a gallery slide.
THUMBNAIL_SIZES = {"small": 320, "medium": 800}
JPEG_QUALITY = 85
ORIGINAL_QUALITY = 90
THUMBNAIL_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class ProcessedImage:
    original: bytes
    extension: str
    width: int
    height: int
    thumbnails: dict[str, bytes]


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent areas become white instead of black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, THUMBNAIL_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _encode(image: Image.Image, image_format: str, icc_profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    # No exif= / pnginfo=: Pillow then writes no EXIF, XMP or text chunks. The colour profile
    # is kept, it says nothing about the photographer.
    options: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
    if image_format == "JPEG":
        image = image if image.mode in ("RGB", "L") else _flatten(image)
        image.save(buffer, "JPEG", quality=ORIGINAL_QUALITY, optimize=True, progressive=True, **options)
    elif image_format == "WEBP":
        image.save(buffer, "WEBP", quality=ORIGINAL_QUALITY, **options)
    else:
        image.save(buffer, "PNG", optimize=True, **options)
    return buffer.getvalue()


def process_image_bytes(data: bytes, *, max_dimension: int, max_pixels: int) -> ProcessedImage:
    """Validate, orient, strip metadata, scale to fit ``max_dimension`` and make thumbnails."""
    try:
        source = Image.open(io.BytesIO(data))
        image_format = source.format
        width, height = source.size
        if image_format not in ALLOWED_IMAGE_FORMATS:
            raise PermanentError(f"Unsupported image format {image_format}.")
        if width * height > max_pixels:
            raise PermanentError(f"The image has too many pixels ({width}x{height}).")
        source.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PermanentError(f"Not a valid image: {exc}") from exc
    icc_profile = source.info.get("icc_profile")
    image = ImageOps.exif_transpose(source)  # rotate as the camera meant, before the EXIF goes
    image.thumbnail((max_dimension, max_dimension), Image.Resampling.LANCZOS)  # only ever shrinks
    thumbnails = {}
    for name, size in THUMBNAIL_SIZES.items():
        thumbnail = _flatten(image)
        thumbnail.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumbnail.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        thumbnails[name] = buffer.getvalue()
    return ProcessedImage(
        original=_encode(image, image_format, icc_profile),
        extension=IMAGE_EXTENSIONS[image_format],
        width=image.width,
        height=image.height,
        thumbnails=thumbnails,
    )


def property_image_process(*, image_id: int) -> str:
    """Process one uploaded image; a no-op when it is gone or already processed."""
    image = PropertyImage.objects.select_related("property").filter(pk=image_id).first()
    if image is None:
        return "skipped: the image was deleted"
    if image.processed_at is not None:
        return "already processed"
    storage = image.image.storage
    original_name = image.image.name
    if not original_name:
        raise PermanentError(f"Image {image_id} has no file.")
    try:
        with storage.open(original_name, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise PermanentError(f"The uploaded file {original_name} is missing.") from None
    processed = process_image_bytes(
        data,
        max_dimension=settings.PROPERTY_IMAGE_MAX_DIMENSION,
        max_pixels=settings.PROPERTY_IMAGE_MAX_PIXELS,
    )
    folder = f"properties/{image.property_id}"
    stem = uuid.uuid4().hex
    written: list[str] = []
    try:
        names = {"image": storage.save(f"{folder}/{stem}.{processed.extension}", ContentFile(processed.original))}
        written.append(names["image"])
        for name, content in processed.thumbnails.items():
            path = f"{folder}/{stem}-{THUMBNAIL_SIZES[name]}.jpg"
            names[f"thumbnail_{name}"] = storage.save(path, ContentFile(content))
            written.append(names[f"thumbnail_{name}"])
        with transaction.atomic():
            # Conditional: a concurrent run (or a replaced file) wins, this one cleans up.
            updated = PropertyImage.objects.filter(pk=image.pk, processed_at__isnull=True, image=original_name).update(
                **names, width=processed.width, height=processed.height, processed_at=timezone.now()
            )
            if updated:
                transaction.on_commit(lambda: storage.delete(original_name))
    except BaseException:
        for name in written:
            storage.delete(name)
        raise
    if not updated:
        for name in written:
            storage.delete(name)
        return "already processed"
    return f"{processed.width}x{processed.height}, thumbnails {', '.join(str(s) for s in THUMBNAIL_SIZES.values())}"


def property_image_process_later(*, image: PropertyImage) -> None:
    """Queue processing for a new or replaced image file, after the transaction commits.

    A replaced file's old thumbnails are dropped at once: they show another picture.
    """
    if image.processed_at is not None or image.thumbnail_small or image.thumbnail_medium:
        PropertyImage.objects.filter(pk=image.pk).update(thumbnail_small=None, thumbnail_medium=None, processed_at=None)
    enqueue(PROCESS_IMAGE_TASK, image.pk, dedupe_key=f"property_image:{image.pk}:process")
