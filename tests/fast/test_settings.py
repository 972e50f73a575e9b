"""Gateway settings from the environment: each value through its field's own parser,
every bad one refused with its variable named."""

from dataclasses import fields
from pathlib import Path

import pytest

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
    assert all("parse" in setting.metadata for setting in fields(Settings))


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
    ("GATEWAY_LOG_FORMAT", "xml", "must be one of text, json"),
    ("GATEWAY_MODEL_SERVER", "  ", "must not be empty"),
    ("GATEWAY_MODELS_DIR", "", "must not be empty"),
    ("GATEWAY_MODELS", "lstm", "must look like"),
    ("GATEWAY_MODELS", "lstm=", "must look like"),
    ("GATEWAY_DEFAULT_MODEL", "gru", "must be one of the models in GATEWAY_MODELS (lstm, simple_rnn)"),
])
def test_bad_values_name_their_variable(variable, value, message):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    assert str(error.value).startswith(f"{variable}={value!r}: ") and message in str(error.value)


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
