from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Primary keys are 64-bit; larger numbers are input errors, not database overflows.
MAX_ID = 2**63 - 1


class QueryParamsSerializer(serializers.Serializer):
    """Validates query parameters: an empty number, date, choice or flag is an error, not "absent".

    DRF reads ``?start=`` as a missing optional field; the schema says a date, and "" is none.
    """

    def to_internal_value(self, data: Any) -> dict:
        blank = {
            name: ["May not be empty."]
            for name, field in self.fields.items()
            if not isinstance(field, serializers.CharField) and data.get(name) == ""
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID, "example": 1})
class IdField(serializers.IntegerField):
    """A primary key given as input: 1 to 2**63 - 1."""

    def __init__(self, **kwargs: Any):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class StrictBooleanField(serializers.BooleanField):
    """A boolean that is ``true`` or ``false``: JSON booleans, or those two words from a form.

    DRF's BooleanField also takes 0, 1, "yes", "on"...; the schema says boolean.
    """

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and data.lower() in ("true", "false"):
            return data.lower() == "true"
        self.fail("invalid", input=data)
