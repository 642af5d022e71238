"""Background tasks of the properties app."""

from jobs.priorities import Priority
from jobs.registry import job
from properties.image_processing import property_image_process


@job(priority=Priority.NORMAL, max_attempts=4, timeout=120, subject="property_image")
def process_property_image(image_id: int) -> str:
    return property_image_process(image_id=image_id)
