"""What the public pages' tests share: an app client, solving the proof of work as a browser
would, and filling a protected form."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

import altcha
from fastapi.testclient import TestClient
from sqlalchemy import Engine


def client_for(engine: Engine) -> TestClient:
    from console_support import make_app

    return TestClient(make_app(engine), base_url="https://kampane.sdruk.test")


def solve(page: str) -> str:
    """The ALTCHA answer a browser's script would compute for the page's challenge."""
    match = re.search(r'data-challenge="([^"]+)"', page)
    assert match, "page has no proof-of-work challenge"
    challenge = json.loads(html.unescape(match.group(1)))
    solution = altcha.solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert solution is not None
    payload = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": solution.number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
    }
    return base64.b64encode(json.dumps(payload).encode()).decode()


def protection(page: str) -> dict[str, str]:
    """The hidden fields of a protected form, filled as a person's browser sends them."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, "page has no CSRF field"
    return {"csrf_token": csrf.group(1), "altcha": solve(page), "web_stranka": ""}


def submit(client: TestClient, url: str, data: dict[str, Any], **headers: str) -> Any:
    """GET the form, then POST `data` with its protection fields."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    return client.post(url, data={**protection(page.text), **data}, headers=headers)
