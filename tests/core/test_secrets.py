"""core.secrets: the one masking rule, `${NAME}` references, and the redactor."""

from __future__ import annotations

import pytest
from django.test import override_settings

from core.secrets import (
    MaskError,
    Redactor,
    check_reference,
    is_secret,
    mask_options,
    mask_url,
    reference_errors,
    resolve,
    secret_values,
    unmask,
    unmask_options,
    unmask_url,
)

# --- which keys are secret -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "api_keys", "X-Api-Key", "Authorization", "Proxy-Authorization", "client_secret", "sessionid", "sig",
        "X-Hub-Signature", "code", "otp_code", "authCode", "pass", "pw", "pwd", "passwd", "sslpassword",
        "accesstoken", "apikey", "AWSAccessKeyId", "Cookie", "credentials", "private_key",
    ],
)  # fmt: skip
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret(key)


@pytest.mark.parametrize("key", ["zipcode", "encoding", "compass", "bypass", "design", "monkey", "type", "headers"])
def test_short_secret_words_inside_innocent_keys_are_not_secret(key: str) -> None:
    assert not is_secret(key)


# --- masking options ------------------------------------------------------------------------


def test_values_in_lists_and_objects_under_a_secret_key_are_masked() -> None:
    options = {
        "api_keys": ["a", "b"],
        "auth": {"type": "bearer", "token": "t"},
        "signing": {"sig": "s1", "pass": "p1", "pw": 7, "code": "c1"},
        "zipcode": "75001",
        "headers": {"Accept": "application/json", "X-Api-Key": "k"},
        "verify": True,
        "password_hint": "",
    }
    assert mask_options(options) == {
        "api_keys": ["***", "***"],
        "auth": {"type": "***", "token": "***"},
        "signing": {"sig": "***", "pass": "***", "pw": "***", "code": "***"},
        "zipcode": "75001",
        "headers": {"Accept": "application/json", "X-Api-Key": "***"},
        "verify": True,
        "password_hint": "",
    }


def test_masked_options_written_back_keep_every_stored_value() -> None:
    options = {"api_keys": ["a", "b"], "auth": {"type": "basic", "username": "u", "password": "p"}, "x": 1}
    assert unmask_options(mask_options(options), options) == options


def test_a_new_value_beside_a_masked_one_is_taken() -> None:
    stored = {"api_keys": ["a", "b"]}
    assert unmask_options({"api_keys": ["***", "c"]}, stored) == {"api_keys": ["a", "c"]}


def test_a_mask_with_nothing_stored_is_refused_naming_the_path() -> None:
    with pytest.raises(MaskError) as error:
        unmask_options({"headers": {"Authorization": "***"}}, {"headers": {}})
    assert error.value.field == "options.headers.Authorization"
    assert "nothing is stored" in error.value.message


# --- masking urls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////abs/path/to.db", "sqlite:///relative.db", "https://h.example/a%20b/?q=a+b&x=%2F#frag",
        "postgresql://etl@db/dw?sslmode=require", "ldaps://dir.example:636", "${NOMAFLOW_SECRET_DW_URL}",
    ],
)  # fmt: skip
def test_a_url_with_nothing_secret_comes_back_byte_for_byte(url: str) -> None:
    assert mask_url(url) == url
    assert unmask_url(url, url) == url


def test_a_url_password_and_secret_query_values_are_masked_in_place() -> None:
    url = "postgresql://etl:p%40ss@db:5432/dw?sslmode=require&sslpassword=x&sig=abc&code=9&zipcode=75001"
    masked = mask_url(url)
    assert masked == "postgresql://etl:***@db:5432/dw?sslmode=require&sslpassword=***&sig=***&code=***&zipcode=75001"
    assert unmask_url(masked, url) == url


# --- secrets follow their destination -------------------------------------------------------

STORED_URL = "https://u:pw@api.example/v1?api_key=k1"
STORED_OPTIONS = {"headers": {"Authorization": "Bearer t0k", "X-Team": "data"}}
AUTH_FIELD = "options.headers.Authorization"


def test_the_mask_keeps_the_stored_secrets_while_the_destination_is_the_same() -> None:
    url, options = unmask(
        mask_url(STORED_URL).replace("/v1", "/v2"), mask_options(STORED_OPTIONS), STORED_URL, STORED_OPTIONS
    )
    assert url == "https://u:pw@api.example/v2?api_key=k1"
    assert options == STORED_OPTIONS


@pytest.mark.parametrize(
    ("url", "options", "field"),
    [
        ("https://u:***@evil.example/v1", STORED_OPTIONS, "url"),
        ("https://evil.example/v1?api_key=***", {}, "url"),
        ("https://api.example:8443/v1", {"headers": {"Authorization": "***"}}, AUTH_FIELD),
        ("http://api.example/v1", {"headers": {"Authorization": "***"}}, AUTH_FIELD),
        ("https://api.example/v1?host=evil.example", {"headers": {"Authorization": "***"}}, AUTH_FIELD),
    ],
)  # fmt: skip
def test_the_mask_towards_a_new_destination_is_refused(url: str, options: dict, field: str) -> None:
    with pytest.raises(MaskError) as error:
        unmask(url, options, STORED_URL, STORED_OPTIONS)
    assert error.value.field == field
    assert "give the secret again" in error.value.message


def test_a_new_secret_for_a_new_destination_is_fine() -> None:
    options = {"headers": {"Authorization": "Bearer new"}}
    assert unmask("https://u:new@other.example/v1", options, STORED_URL, STORED_OPTIONS) == (
        "https://u:new@other.example/v1",
        options,
    )


# --- ${NAME} references -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "REDIS_URL", "NOMAFLOW_SECRET_PREFIX", "DJANGO_X"])
def test_nomaflow_settings_variables_are_never_references(name: str) -> None:
    with pytest.raises(ValueError, match=f"\\${{{name}}} is one of nomaflow's own settings"):
        check_reference(name)


def test_a_name_outside_the_prefix_is_refused_with_the_rule() -> None:
    with pytest.raises(
        ValueError, match=r"\$\{HOME\} is not a secret reference; use a name starting with NOMAFLOW_SECRET_"
    ):
        check_reference("HOME")


@override_settings(NOMAFLOW_SECRET_PREFIX="ACME_", NOMAFLOW_SECRET_ALLOWLIST=["DW_PASSWORD", "DATABASE_URL"])
def test_the_prefix_and_allowlist_are_settings_but_never_override_nomaflow_settings() -> None:
    check_reference("ACME_TOKEN")
    check_reference("DW_PASSWORD")
    with pytest.raises(ValueError):
        check_reference("NOMAFLOW_SECRET_X")
    with pytest.raises(ValueError):
        check_reference("DATABASE_URL")


def test_reference_errors_name_the_field() -> None:
    errors = reference_errors(
        {"headers": {"X-Token": "${EMAIL_HOST_PASSWORD}"}, "ok": "${NOMAFLOW_SECRET_A}"}, "options"
    )
    assert list(errors) == ["options.headers.X-Token"]
    assert "EMAIL_HOST_PASSWORD" in errors["options.headers.X-Token"][0]


def test_resolve_substitutes_everywhere_and_feeds_the_redactor() -> None:
    redact = Redactor()
    environ = {"NOMAFLOW_SECRET_PW": "hunter22", "NOMAFLOW_SECRET_LIST": "item-secret"}
    value = {"url": "https://h/${NOMAFLOW_SECRET_PW}/x", "keys": ["${NOMAFLOW_SECRET_LIST}"], "n": 1}
    assert resolve(value, environ, redact) == {"url": "https://h/hunter22/x", "keys": ["item-secret"], "n": 1}
    assert redact("hunter22 and item-secret") == "*** and ***"


def test_resolve_refuses_a_settings_variable_even_when_it_is_set() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        resolve("${DATABASE_URL}", {"DATABASE_URL": "postgresql://x/nomaflow"})
    with pytest.raises(LookupError, match=r"\$\{NOMAFLOW_SECRET_MISSING\} is not set on this worker"):
        resolve("${NOMAFLOW_SECRET_MISSING}", {})


# --- redactor ---------------------------------------------------------------------------------


def test_the_redactor_hides_a_secret_and_its_url_and_json_forms_in_one_pass() -> None:
    redact = Redactor(['a/b c"d', "abcd", "abcdefgh"])
    assert redact('x a/b c"d a%2Fb%20c%22d a%2Fb+c%22d a/b c\\"d abcdefgh abcd') == "x *** *** *** *** *** ***"


def test_an_empty_redactor_is_false_and_returns_the_text_itself() -> None:
    text = "nothing to hide"
    assert not Redactor() and Redactor()(text) is text
    assert not Redactor(["abc"])  # too short to hide without blanking ordinary words


def test_secret_values_of_a_connector() -> None:
    values = secret_values("https://u:p%40ss@h/x?token=t1&page=2", {"auth": {"token": "t2"}, "name": "n"})
    assert set(values) == {"p%40ss", "p@ss", "t1", "t2"}
