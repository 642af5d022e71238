from rest_framework import serializers

from accounts.models import User
from core.serializers import StrictBooleanField


class RegisterInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    is_host = StrictBooleanField(default=False)


class LoginInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "is_host", "is_staff", "tier", "date_joined"]
        read_only_fields = fields


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserOutputSerializer()
