"""Gateway settings from the environment: values parsed, bad ones named in the error."""

import pytest

from serving.gateway.settings import Settings


def test_model_server_target_and_load_balancing_policy():
    settings = Settings.from_env({
        "GATEWAY_MODEL_SERVER": "dns:///tfserving:8500", "GATEWAY_MODEL_SERVER_LB_POLICY": "round_robin",
    })
    assert (settings.model_server, settings.model_server_lb_policy) == ("dns:///tfserving:8500", "round_robin")
    assert Settings.from_env({}).model_server_lb_policy == "pick_first"


@pytest.mark.parametrize("variable, value", [
    ("GATEWAY_MODEL_SERVER_LB_POLICY", "random"),
    ("GATEWAY_MAX_TEXTS", "many"),
    ("GATEWAY_DEFAULT_MODEL", "gru"),
])
def test_bad_values_name_their_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})
