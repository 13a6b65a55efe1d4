"""CloudFormation custom resources: the request CloudFormation sends and the response it waits for.

The response is an HTTP PUT of a JSON body to the request's pre-signed ``ResponseURL`` (an S3 URL
signed without a content type, so none is sent). CloudFormation waits up to an hour for it, so a
custom resource must answer on every path, failures included. The body is limited to 4 KB: the
reason is truncated to fit.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from replyflow.errors import ReplyflowError

MAX_REASON_CHARS = 2000


class CustomResourceRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    request_type: Literal["Create", "Update", "Delete"] = Field(alias="RequestType")
    response_url: str = Field(alias="ResponseURL")
    stack_id: str = Field(alias="StackId")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    physical_resource_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_properties: dict[str, Any] = Field(default_factory=dict, alias="ResourceProperties")


class CustomResourceResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status: Literal["SUCCESS", "FAILED"] = Field(alias="Status")
    reason: str = Field(default="", alias="Reason")
    physical_resource_id: str = Field(alias="PhysicalResourceId")
    stack_id: str = Field(alias="StackId")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    no_echo: bool = Field(default=False, alias="NoEcho")
    data: dict[str, str] = Field(default_factory=dict, alias="Data")

    @classmethod
    def to(
        cls,
        request: CustomResourceRequest,
        status: Literal["SUCCESS", "FAILED"],
        physical_resource_id: str,
        *,
        reason: str = "",
        data: dict[str, str] | None = None,
    ) -> CustomResourceResponse:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        return cls(
            status=status,
            reason=reason,
            physical_resource_id=physical_resource_id,
            stack_id=request.stack_id,
            request_id=request.request_id,
            logical_resource_id=request.logical_resource_id,
            data=data or {},
        )

    def body(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True)).encode()


class ResponseDeliveryError(ReplyflowError):
    """CloudFormation's ResponseURL did not take the response."""

    code = "cfn_response_undelivered"
    status = 502


def send_response(
    url: str, response: CustomResourceResponse, *, attempts: int = 3, timeout: float = 10
) -> None:
    import httpx

    body = response.body()
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            reply = httpx.put(url, content=body, headers={"Content-Type": ""}, timeout=timeout)
            if reply.status_code < 300:
                return
            last = ResponseDeliveryError(f"ResponseURL answered {reply.status_code}")
        except httpx.HTTPError as error:
            last = error
        time.sleep(min(2**attempt, 5))
    raise ResponseDeliveryError(f"could not deliver the custom resource response: {last}") from last
