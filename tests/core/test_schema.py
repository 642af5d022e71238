"""The OpenAPI schema documents every error in the one shape, and the docs work offline and only where allowed."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.conftest import client_for
from tests.test_error_shape import assert_error_shape

DOMAINS = {"auth", "properties", "bookings", "payouts", "analytics", "admin", "realtime"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def error_schema_of(operation: dict, status: str) -> dict:
    return operation["responses"][status]["content"]["application/json"]["schema"]


def test_every_operation_documents_rate_limits_and_unavailability_in_the_error_shape(schema):
    for path, method, operation in operations(schema):
        for status in ("429", "503"):
            assert error_schema_of(operation, status) == ERROR_REF, (method, path, status)
            assert "Retry-After" in operation["responses"][status]["headers"]


def test_every_write_documents_bad_bodies(schema):
    writes = [(p, m, o) for p, m, o in operations(schema) if m in {"POST", "PUT", "PATCH", "DELETE"}]

    assert writes
    for path, method, operation in writes:
        for status in ("400", "409", "413", "415", "422"):
            assert error_schema_of(operation, status) == ERROR_REF, (method, path, status)


def test_operations_document_auth_and_not_found_errors_where_they_apply(schema):
    booking_get = schema["paths"]["/api/v1/bookings/{id}/"]["get"]["responses"]
    login = schema["paths"]["/api/v1/auth/login/"]["post"]["responses"]
    search = schema["paths"]["/api/v1/properties/"]["get"]["responses"]

    assert {"401", "403", "404"} <= set(booking_get)
    assert not {"401", "403"} & set(login)  # anonymous endpoint without authentication
    assert "404" in search  # a page past the last
    assert "400" not in booking_get  # nothing to validate but the path


def test_the_error_schema_is_the_one_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]

    assert error["required"] == ["error"]
    assert set(detail["required"]) == {"code", "message", "fields"}
    assert detail["properties"]["fields"]["type"] == "object"


def test_operations_are_tagged_by_domain_with_readable_unique_ids(schema):
    ids = [operation["operationId"] for _, _, operation in operations(schema)]

    assert len(ids) == len(set(ids))
    assert not [i for i in ids if i.startswith("v1") or "api" in i]
    assert {"booking_create", "booking_cancel", "property_list", "auth_login", "payout_list"} <= set(ids)
    for path, method, operation in operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in DOMAINS, (method, path, operation["tags"])


def test_input_limits_and_examples_are_realistic(schema):
    search = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/properties/"]["get"]["parameters"]}
    booking_id = schema["paths"]["/api/v1/bookings/{id}/"]["get"]["parameters"][0]["schema"]
    property_id = schema["components"]["schemas"]["BookingCreateInputRequest"]["properties"]["property_id"]

    assert (search["page_size"]["minimum"], search["page_size"]["maximum"]) == (1, 100)
    assert search["page"]["minimum"] == 1
    assert booking_id["example"] == 1
    assert (property_id["minimum"], property_id["example"]) == (1, 1)


# --- Docs pages -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_load_their_assets_from_this_server(db, settings, anon_client, path):
    settings.API_DOCS_PUBLIC = True

    page = anon_client.get(path).content.decode()

    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower() and "@latest" not in page


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_docs_are_for_staff_unless_public(db, settings, anon_client, guest, staff, path):
    settings.API_DOCS_PUBLIC = False

    assert_error_shape(anon_client.get(path), 403, "docs_not_public")
    assert_error_shape(client_for(guest).get(path), 403, "docs_not_public")
    assert client_for(staff).get(path).status_code == 200


def test_docs_are_open_to_a_staff_session(db, settings, client, staff):
    settings.API_DOCS_PUBLIC = False
    client.force_login(staff)

    assert client.get("/api/schema/").status_code == 200


def test_docs_refuse_an_invalid_token(db, settings, anon_client):
    settings.API_DOCS_PUBLIC = False
    anon_client.credentials(HTTP_AUTHORIZATION="Token nope")

    assert_error_shape(anon_client.get("/api/schema/"), 403, "docs_not_public")
