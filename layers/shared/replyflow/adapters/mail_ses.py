"""Amazon SES (API v2) behind the ``Mailer`` port. The client is built by the wiring, lazily; the
message body carries single-use links and is never logged."""

from __future__ import annotations

from typing import Any

from replyflow.domain.emails import OutgoingEmail
from replyflow.errors import MailDeliveryError
from replyflow.observability import logger


class SesMailer:
    def __init__(self, client: Any, from_address: str, configuration_set: str | None = None) -> None:
        self._client = client
        self._from = from_address
        self._configuration_set = configuration_set

    def send(self, message: OutgoingEmail) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}},
                }
            },
            "EmailTags": [{"Name": "kind", "Value": message.kind}],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            self._client.send_email(**request)
        except (BotoCoreError, ClientError) as error:
            code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
            logger.warning("SES refused an email", extra={"kind": message.kind, "error_code": code})
            raise MailDeliveryError("the email could not be sent; try again in a moment") from None
