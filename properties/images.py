from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from core.exceptions import InvalidInput

ALLOWED_IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def validate_image_upload(upload: UploadedFile) -> str:
    """Check size, real format (by content, not by name or header) and pixel count.

    Returns the file extension of the detected format.
    """
    if upload.size is None or upload.size == 0:
        raise InvalidInput("The image file is empty.", fields={"image": ["Empty file."]})
    if upload.size > settings.PROPERTY_IMAGE_MAX_BYTES:
        limit_mb = settings.PROPERTY_IMAGE_MAX_BYTES // (1024 * 1024)
        raise InvalidInput(f"Images may be at most {limit_mb} MB.", fields={"image": ["File too large."]})
    try:
        upload.seek(0)
        with Image.open(upload) as img:
            image_format = img.format
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise InvalidInput("The file is not a valid image.", fields={"image": ["Not a valid image."]}) from None
    finally:
        upload.seek(0)
    if image_format not in ALLOWED_IMAGE_FORMATS:
        allowed = ", ".join(sorted(ALLOWED_IMAGE_FORMATS))
        raise InvalidInput(f"Unsupported image type; use one of {allowed}.", fields={"image": ["Unsupported type."]})
    if width * height > settings.PROPERTY_IMAGE_MAX_PIXELS:
        raise InvalidInput("The image has too many pixels.", fields={"image": ["Too many pixels."]})
    return IMAGE_EXTENSIONS[image_format]
