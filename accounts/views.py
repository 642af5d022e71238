from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import User
from accounts.permissions import request_user
from accounts.serializers import (
    DetailOutputSerializer,
    LoginInputSerializer,
    PasswordChangeInputSerializer,
    PasswordResetConfirmInputSerializer,
    PasswordResetInputSerializer,
    RegisterInputSerializer,
    TokenOutputSerializer,
    UserOutputSerializer,
)
from caching.responses import cache_response
from caching.specs import per_user
from core.replicas import pin_issued_credentials


def _token_response(user: User, token: Token, *, status: int) -> Response:
    pin_issued_credentials(f"Token {token.key}")
    response = Response(TokenOutputSerializer({"token": token.key, "user": user}).data, status=status)
    response.contains_secrets = True  # type: ignore[attr-defined]  # never compressed: see config.middleware.SelectiveGZipMiddleware
    return response


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RegisterInputSerializer, responses={201: TokenOutputSerializer})
    def post(self, request: Request) -> Response:
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.user_register(**data.validated_data)
        return _token_response(user, token, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=LoginInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request: Request) -> Response:
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.user_login(**data.validated_data)
        return _token_response(user, token, status=status.HTTP_200_OK)


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        services.user_logout(user=request_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserOutputSerializer})
    @cache_response("user", lambda view, request, *a, **k: per_user(request, "me"))
    def get(self, request: Request) -> Response:
        return Response(UserOutputSerializer(request.user).data)


class PasswordChangeView(APIView):
    """Change my password. Every token and session of the account ends; the answer carries a new token."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=PasswordChangeInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request: Request) -> Response:
        data = PasswordChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = services.user_password_change(user=request_user(request), **data.validated_data)
        return _token_response(token.user, token, status=status.HTTP_200_OK)


RESET_REQUESTED = "If an active account uses this address, a reset email is on its way."


class PasswordResetRequestView(APIView):
    """Email a password reset token. The answer is the same whether or not the address has an account."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=PasswordResetInputSerializer, responses={202: DetailOutputSerializer})
    def post(self, request: Request) -> Response:
        data = PasswordResetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_password_reset_request(**data.validated_data)
        return Response({"detail": RESET_REQUESTED}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(APIView):
    """Set a new password with the uid and token of a reset email; answers with a new token."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=PasswordResetConfirmInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request: Request) -> Response:
        data = PasswordResetConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.user_password_reset_confirm(**data.validated_data)
        return _token_response(user, token, status=status.HTTP_200_OK)
