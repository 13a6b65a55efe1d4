"""The console's URL in a stack without ``ConsoleBaseUrl``: read from the SSM parameter the stack
writes (the distribution's URL), once, at the first link the API writes; the OAuth redirect follows."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from replyflow.adapters.ssm_parameters import read_parameter
from replyflow.errors import ConfigurationUnavailableError
from replyflow.settings import Settings
from replyflow.wiring.api import ApiDeps, build_api
from replyflow.wiring.core import Clients

PARAMETER = "/replyflow-dev/console-base-url"
DISTRIBUTION = "https://d111111abcdef8.cloudfront.net"


class FakeSsm:
    """``get_parameter`` over a dict; ``fail`` answers the next reads with an AccessDenied."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads: list[str] = []
        self.fail = 0

    def get_parameter(self, *, Name: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        self.reads.append(Name)
        if self.fail:
            self.fail -= 1
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter")
        return {"Parameter": {"Name": Name, "Type": "String", "Value": self.values[Name]}}


class SsmClients(Clients):
    def __init__(self, settings: Settings, ssm: FakeSsm) -> None:
        super().__init__(settings)
        self.ssm = ssm

    def aws_client(self, service: str) -> Any:
        assert service == "ssm", service
        return self.ssm


def deployed(ssm: FakeSsm, *, redirect_uri: str = "") -> ApiDeps:
    settings = Settings(
        environment="test",
        console_base_url_parameter=PARAMETER,
        oauth_redirect_uri=redirect_uri,
        oauth_redirect_to_console=True,
    )
    return build_api(settings, clients=SsmClients(settings, ssm))


def test_the_parameter_replaces_the_setting_and_is_read_once() -> None:
    ssm = FakeSsm({PARAMETER: DISTRIBUTION + "/"})
    deps = deployed(ssm)
    assert ssm.reads == []  # nothing at build time
    assert deps.console_base_url == DISTRIBUTION
    assert deps.billing_urls.return_url == f"{DISTRIBUTION}/billing"
    assert deps.oauth_config_at("https://api.example").redirect_uri == f"{DISTRIBUTION}/accounts/callback"
    assert ssm.reads == [PARAMETER]


def test_a_failed_read_is_a_503_and_the_next_request_reads_again() -> None:
    ssm = FakeSsm({PARAMETER: DISTRIBUTION})
    ssm.fail = 1
    deps = deployed(ssm)
    with pytest.raises(ConfigurationUnavailableError) as raised:
        _ = deps.console_base_url
    assert (raised.value.status, raised.value.code) == (503, "configuration_unavailable")
    assert deps.console_base_url == DISTRIBUTION
    assert ssm.reads == [PARAMETER, PARAMETER]


def test_without_the_parameter_the_setting_and_the_apis_own_callback() -> None:
    settings = Settings(environment="test", console_base_url="https://app.example/", oauth_redirect_uri="")
    deps = build_api(settings)
    assert deps.console_base_url == "https://app.example"
    redirect = deps.oauth_config_at("https://abc.execute-api.us-east-1.amazonaws.com/live").redirect_uri
    assert redirect == "https://abc.execute-api.us-east-1.amazonaws.com/live/v1/accounts/oauth/callback"


def test_an_explicit_redirect_uri_wins() -> None:
    ssm = FakeSsm({PARAMETER: DISTRIBUTION})
    deps = deployed(ssm, redirect_uri="https://app.example/connect")
    assert deps.oauth_config_at("https://api.example").redirect_uri == "https://app.example/connect"
    assert ssm.reads == []


def test_a_missing_value_is_unavailable_not_a_key_error() -> None:
    with pytest.raises(ConfigurationUnavailableError):
        read_parameter(FakeSsm({}), PARAMETER)
