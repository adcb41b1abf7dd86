"""CORS settings: read from the environment, checked at start-up, and absent unless configured."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.security.cors import cors_middleware
from gateway.settings import Settings


def test_no_origins_means_no_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_CORS_ORIGINS", raising=False)
    assert Settings().cors_origins == []
    assert cors_middleware(Settings()) is None


def test_origins_are_comma_separated_and_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://App.Example.com, http://localhost:5173")
    settings = Settings()
    assert settings.cors_origins == ["https://app.example.com", "http://localhost:5173"]
    assert (settings.cors_allow_credentials, settings.cors_max_age_s) == (False, 600)
    assert cors_middleware(settings) is not None


@pytest.mark.parametrize(
    ("origins", "words"),
    [
        ("https://app.example.com/", "not an origin"),
        ("https://app.example.com/chat", "not an origin"),
        ("app.example.com", "not an origin"),
        ("*, https://app.example.com", "`*` already allows every origin"),
    ],
)
def test_a_bad_origin_fails_at_start_up(monkeypatch: pytest.MonkeyPatch, origins: str, words: str) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", origins)
    with pytest.raises(ValidationError, match=words):
        Settings()


def test_any_origin_with_credentials_fails_at_start_up_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "*")
    monkeypatch.setenv("GATEWAY_CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ValidationError) as failed:
        Settings()
    [error] = failed.value.errors()
    assert error["loc"] == ("cors_allow_credentials",)  # `python -m gateway` names GATEWAY_CORS_ALLOW_CREDENTIALS
    assert "browsers refuse credentials for a wildcard origin" in error["msg"]


def test_listed_origins_may_have_credentials() -> None:
    settings = Settings(cors_origins=["https://app.example.com"], cors_allow_credentials=True)
    assert settings.cors_allow_credentials


def test_the_request_timeout_must_be_positive() -> None:
    assert Settings().request_timeout_s == 600
    with pytest.raises(ValidationError):
        Settings(request_timeout_s=0)
