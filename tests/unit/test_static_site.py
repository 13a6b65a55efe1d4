"""The gateway serves the console where no route claims a path, as CloudFront does in AWS: files from
``dist/``, ``index.html`` for the app's own routes, never for the API's prefixes; hashed assets cached
for a year, ``index.html`` revalidated; the CSP on every page. Through ``LocalGateway.handle``."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.gateway import HttpRequest, HttpResponse, LocalGateway
from local.static_site import IMMUTABLE, StaticSite
from local.template import parse_template

TEMPLATE = """
Resources:
  RestApi:
    Type: AWS::Serverless::Api
    Properties: {StageName: live}
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fake.api
      Events:
        Health: {Type: Api, Properties: {Path: /health, Method: GET}}
        Rest: {Type: Api, Properties: {Path: "/v1/items/{id}", Method: GET}}
"""


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("outside")
    return tmp_path


@pytest.fixture
def gateway(dist: Path) -> LocalGateway:
    return LocalGateway(parse_template(TEMPLATE), {}, site=StaticSite(dist))


def header(response: HttpResponse, name: str) -> str | None:
    found = [v for k, v in response.headers if k.lower() == name.lower()]
    return found[-1] if found else None


def test_the_root_and_app_routes_are_index_html_revalidated(gateway: LocalGateway) -> None:
    for path in ("/", "/logs", "/accounts/callback?code=x&state=y", "/password/reset"):
        response = gateway.handle(HttpRequest("GET", path))
        assert response.status == 200, path
        assert b"<title>console</title>" in response.body
        assert header(response, "Cache-Control") == "no-cache"
        assert header(response, "Content-Type") == "text/html; charset=utf-8"
        assert "frame-ancestors 'none'" in (header(response, "Content-Security-Policy") or "")


def test_hashed_assets_are_immutable_and_a_missing_one_is_404(gateway: LocalGateway) -> None:
    response = gateway.handle(HttpRequest("GET", "/assets/index-abc123.js"))
    assert (response.status, response.body) == (200, b"console.log(1)")
    assert header(response, "Cache-Control") == IMMUTABLE
    assert "javascript" in (header(response, "Content-Type") or "")
    assert gateway.handle(HttpRequest("GET", "/assets/index-gone.js")).status == 404


def test_the_api_prefixes_and_other_methods_are_never_the_app(gateway: LocalGateway) -> None:
    for method, path in (("GET", "/v1/unknown"), ("GET", "/webhooks/x"), ("POST", "/logs"), ("GET", "/v1")):
        response = gateway.handle(HttpRequest(method, path))
        assert response.status == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"


def test_head_has_no_body_and_traversal_stays_inside(gateway: LocalGateway) -> None:
    head = gateway.handle(HttpRequest("HEAD", "/assets/index-abc123.js"))
    assert (head.status, head.body) == (200, b"")
    escaped = gateway.handle(HttpRequest("GET", "/../secret.txt"))
    assert b"outside" not in escaped.body


def test_without_a_site_an_unknown_path_is_the_gateways_404(dist: Path) -> None:
    gateway = LocalGateway(parse_template(TEMPLATE), {})
    assert gateway.handle(HttpRequest("GET", "/logs")).status == 404
