"""What a recorded cassette keeps of a token exchange and an API call: no secret, no company id."""

from __future__ import annotations

from types import SimpleNamespace

from runtime.testing import cassette_scrubbers

HOOKS = cassette_scrubbers(replace={"9130357766900000": "1234567890"},
                           form_fields=("client_secret", "refresh_token"),
                           json_fields=("access_token", "refresh_token"),
                           drop_headers=("Set-Cookie",))


def test_token_requests_and_api_uris_lose_their_secrets_and_ids() -> None:
    token = SimpleNamespace(uri="https://oauth.example/tokens", body=(
        b"grant_type=refresh_token&refresh_token=rt-secret&client_secret=cs-secret&client_id=app"))
    call = SimpleNamespace(uri="https://qb.example/v3/company/9130357766900000/query?q=x",
                           body='{"Name": "Cool Cars", "access_token": "at-secret"}')
    scrubbed = [HOOKS["before_record_request"](r) for r in (token, call)]
    assert scrubbed[0].body.decode() == ("grant_type=refresh_token&refresh_token=%3CREFRESH_TOKEN%3E"
                                         "&client_secret=%3CCLIENT_SECRET%3E&client_id=app")
    assert scrubbed[1].uri == "https://qb.example/v3/company/1234567890/query?q=x"
    assert scrubbed[1].body.decode() == '{"Name": "Cool Cars", "access_token": "<ACCESS_TOKEN>"}'


def test_answers_lose_tokens_ids_and_cookies() -> None:
    answer = {"body": {"string": b'{"access_token": "at-secret", "realmId": "9130357766900000"}'},
              "headers": {"set-cookie": ["s=1"], "content-type": ["application/json"]}}
    scrubbed = HOOKS["before_record_response"](answer)
    assert scrubbed["body"]["string"] == b'{"access_token": "<ACCESS_TOKEN>", "realmId": "1234567890"}'
    assert scrubbed["headers"] == {"content-type": ["application/json"]}
