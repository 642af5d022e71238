"""Which storage uploaded images go to, by environment (config/settings.py "Media storage").

Settings are read once per process, so each environment is loaded in a subprocess.
"""

import json

import pytest

from tests.test_settings_modes import run_python

pytestmark = pytest.mark.subprocess

PRINT_STORAGE = (
    "import json; from django.conf import settings; from django.core.files.storage import storages; "
    "storage = storages['default']; "
    "print(json.dumps({'backend': settings.STORAGES['default']['BACKEND'], "
    "'class': type(storage).__module__ + '.' + type(storage).__name__, "
    "'url': storage.url('properties/7/front.jpg')}))"
)


def storage_for(env: dict[str, str], tmp_path) -> dict:
    result = run_python(["-c", PRINT_STORAGE], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_configuration_media_is_the_local_directory(tmp_path):
    storage = storage_for({"MEDIA_ROOT": str(tmp_path / "media")}, tmp_path)

    assert storage["class"] == "django.core.files.storage.filesystem.FileSystemStorage"
    assert storage["url"] == "/media/properties/7/front.jpg"


def test_a_bucket_name_alone_selects_s3_and_images_link_to_the_bucket_domain(tmp_path):
    env = {"AWS_STORAGE_BUCKET_NAME": "staybase-media", "AWS_S3_CUSTOM_DOMAIN": "media.staybase.example.com"}

    storage = storage_for(env, tmp_path)

    assert storage["class"] == "storages.backends.s3.S3Storage"
    assert storage["url"] == "https://media.staybase.example.com/media/properties/7/front.jpg"


def test_an_s3_compatible_endpoint_gets_unsigned_urls_on_that_endpoint(tmp_path):
    env = {
        "MEDIA_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "staybase-media",
        "AWS_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "AWS_S3_REGION_NAME": "us-east-1",
    }

    storage = storage_for(env, tmp_path)

    assert storage["class"] == "storages.backends.s3.S3Storage"
    assert storage["url"] == "http://minio.internal:9000/staybase-media/media/properties/7/front.jpg"


def test_s3_without_a_bucket_refuses_to_start(tmp_path):
    result = run_python(["-c", PRINT_STORAGE], {"MEDIA_STORAGE": "s3"}, tmp_path)

    assert result.returncode != 0
    assert "MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME" in result.stderr


def test_an_unknown_media_storage_refuses_to_start(tmp_path):
    result = run_python(["-c", PRINT_STORAGE], {"MEDIA_STORAGE": "gcs"}, tmp_path)

    assert result.returncode != 0
    assert "MEDIA_STORAGE must be 'local' or 's3'" in result.stderr
