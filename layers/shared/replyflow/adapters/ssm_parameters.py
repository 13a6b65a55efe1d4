"""A String parameter of SSM Parameter Store, read with the function's role.

The stack writes values there that a function's configuration cannot hold: the console distribution's
URL names the API, so the API function cannot name it back without a circular dependency
(template.yaml ``ConsoleBaseUrlParameter``). A failed read is ``ConfigurationUnavailableError`` (503);
the caller caches a value it read, never a failure.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from replyflow.errors import ConfigurationUnavailableError


def read_parameter(ssm: Any, name: str) -> str:
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise ConfigurationUnavailableError(
            "the console's address is not available right now; try again shortly"
        ) from exc
    return str(value)
