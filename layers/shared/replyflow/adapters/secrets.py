"""Secrets Manager JSON secrets (the database credentials the migrate function reads at run time)."""

from __future__ import annotations

import json
from typing import Any


class SecretsManagerReader:
    def __init__(self, client: Any) -> None:
        self._client = client

    def json(self, secret_id: str) -> dict[str, Any]:
        value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise ValueError(f"secret {secret_id} is not a JSON object")
        return parsed
