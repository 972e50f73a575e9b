"""Gateway settings from the environment: each value through its field's own validator,
every bad one refused with its variable named."""

from pathlib import Path
from typing import get_args

import pytest
from pydantic import BeforeValidator

from serving.gateway.settings import Settings, SettingsError


def test_defaults_without_any_variable():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.models == {"lstm": "imdb_lstm", "simple_rnn": "imdb_simple_rnn"}
    assert settings.model_server_lb_policy == "pick_first"


def test_every_field_reads_its_variable():
    environ = {
        "GATEWAY_MODEL_SERVER": "dns:///tfserving:8500", "GATEWAY_MODEL_SERVER_LB_POLICY": "round_robin",
        "GATEWAY_MODELS_DIR": "/models", "GATEWAY_MODELS": "a=imdb_a, b=imdb_b", "GATEWAY_DEFAULT_MODEL": "b",
        "GATEWAY_RPC_TIMEOUT_SECONDS": "2.5", "GATEWAY_MAX_TEXTS": "16", "GATEWAY_GRPC_PORT": "0",
        "GATEWAY_HTTP_THREADS": "8", "GATEWAY_ACCESS_LOG": "TRUE",
    }
    settings = Settings.from_env(environ)
    assert (settings.model_server, settings.model_server_lb_policy) == ("dns:///tfserving:8500", "round_robin")
    assert settings.models_dir == Path("/models") and settings.models == {"a": "imdb_a", "b": "imdb_b"}
    assert (settings.default_model, settings.rpc_timeout_seconds, settings.max_texts, settings.grpc_port) == (
        "b", 2.5, 16, 0)
    assert (settings.http_threads, settings.access_log) == (8, True)
    assert Settings.from_env({"GATEWAY_ACCESS_LOG": "0"}).access_log is False
    assert Settings.from_env({"gateway_max_texts": "16", "Gateway_Max_Texts": "16"}).max_texts == 64  # exact names


def test_every_field_has_a_validator_of_its_own_and_a_description():
    def metadata(field) -> list:  # the field's own, or its type's inside `X | None`
        inner = [item for arg in get_args(field.annotation) for item in getattr(arg, "__metadata__", ())]
        return field.metadata or inner

    for name, field in Settings.model_fields.items():
        assert any(isinstance(item, BeforeValidator) for item in metadata(field)), name
        assert field.description, name


@pytest.mark.parametrize("variable, value, message", [
    ("GATEWAY_MODEL_SERVER_LB_POLICY", "random", "must be one of pick_first, round_robin"),
    ("GATEWAY_MAX_TEXTS", "many", "must be a whole number"),
    ("GATEWAY_MAX_TEXTS", "0", "must be at least 1"),
    ("GATEWAY_MAX_IN_FLIGHT", "2.5", "must be a whole number"),
    ("GATEWAY_GRPC_PORT", "70000", "must be from 0 to 65535"),
    ("GATEWAY_RPC_TIMEOUT_SECONDS", "-1", "positive number of seconds"),
    ("GATEWAY_RPC_TIMEOUT_SECONDS", "nan", "positive number of seconds"),
    ("GATEWAY_HTTP_WORKERS", "0", "must be at least 1"),
    ("GATEWAY_ACCESS_LOG", "yes please", "must be true or false"),
    ("GATEWAY_ACCESS_LOG", "on", "must be true or false"),  # true to pydantic's lax bool
    ("GATEWAY_LOG_FORMAT", "xml", "must be one of text, json"),
    ("GATEWAY_MODEL_SERVER", "  ", "must not be empty"),
    ("GATEWAY_MODELS_DIR", "", "must not be empty"),
    ("GATEWAY_MODELS", "lstm", "must look like"),
    ("GATEWAY_MODELS", "lstm=", "must look like"),
    ("GATEWAY_MODELS", '{"lstm": "imdb_lstm"}', "must look like"),  # never decoded as JSON
    ("GATEWAY_DEFAULT_MODEL", "gru", "must be one of the models in GATEWAY_MODELS (lstm, simple_rnn)"),
])
def test_bad_values_name_their_variable(variable, value, message):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    assert str(error.value).startswith(f"{variable}={value!r}: ") and message in str(error.value)


def test_changed_settings_are_validated_like_the_variables(monkeypatch):
    settings = Settings()
    assert settings.with_changes(max_texts=16, cors_origins=("https://a.example",)).max_texts == 16
    assert settings.max_texts == 64  # frozen: the change is a copy
    with pytest.raises(SettingsError, match="^GATEWAY_MAX_TEXTS=0: must be at least 1$"):
        settings.with_changes(max_texts=0)
    with pytest.raises(SettingsError, match="^set both GATEWAY_GRPC_TLS_CERT and GATEWAY_GRPC_TLS_KEY"):
        settings.with_changes(grpc_tls_cert=Path("server.pem"))
    with pytest.raises(SettingsError, match="^GATEWAY_MAX_TEXT=8: "):
        settings.with_changes(max_text=8)
    monkeypatch.setenv("GATEWAY_MAX_TEXTS", "16")
    assert Settings().max_texts == 64 and Settings.from_env().max_texts == 16  # only from_env reads variables


def test_cors_origins_are_exact_origins():
    assert Settings.from_env({"GATEWAY_CORS_ORIGINS": "https://a.example, http://localhost:3000/"}).cors_origins == (
        "https://a.example", "http://localhost:3000")
    for bad in ("*", "a.example", "https://a.example/path"):
        with pytest.raises(SettingsError, match="not an origin"):
            Settings.from_env({"GATEWAY_CORS_ORIGINS": bad})


def test_the_prediction_log_salt_is_long_and_may_come_from_a_file(tmp_path):
    logged = {"GATEWAY_PREDICTION_LOG_DIR": str(tmp_path / "log")}
    with pytest.raises(SettingsError, match="set GATEWAY_PREDICTION_LOG_SALT or GATEWAY_PREDICTION_LOG_SALT_FILE"):
        Settings.from_env(logged)
    with pytest.raises(SettingsError, match="^GATEWAY_PREDICTION_LOG_SALT: the salt must have at least 16 characters, got 5"):
        Settings.from_env({**logged, "GATEWAY_PREDICTION_LOG_SALT": "short"})
    salt_file = tmp_path / "salt"
    salt_file.write_text("a-salt-kept-in-a-secret\n")
    settings = Settings.from_env({**logged, "GATEWAY_PREDICTION_LOG_SALT_FILE": str(salt_file)})
    assert settings.prediction_log_salt == "a-salt-kept-in-a-secret"
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({**logged, "GATEWAY_PREDICTION_LOG_SALT_FILE": str(salt_file),
                           "GATEWAY_PREDICTION_LOG_SALT": "a-salt-kept-in-a-secret"})
    with pytest.raises(SettingsError, match="^GATEWAY_PREDICTION_LOG_SALT_FILE: cannot read the salt"):
        Settings.from_env({**logged, "GATEWAY_PREDICTION_LOG_SALT_FILE": str(tmp_path / "missing")})
