"""Drives the mock carrier's Vonage with Vonage's official Python SDK (v4),
unchanged, in both of its ways to authenticate to the SMS API.

Usage: vonage_sdk.py HOST:PORT API_KEY API_SECRET SIGNATURE_SECRET SIGNATURE_METHOD

The SDK calls `https://{rest_host}`; the mock speaks plain HTTP, so the
SDK's session gets an adapter for the mock's address that sends the same
request over http. Everything else is the SDK as shipped: `sms.send` with an
`Authorization: Basic` header (key and secret); a signed request (`api_key`,
`timestamp`, `sig` with the signature secret) through the SDK's own HTTP
client and signer; `sms.send` signed; and `account.get_balance()`.

`sms.send` in signed mode signs every field of its message model, those it
leaves unset too (as "None"), and then sends only the set ones: no server
that checks the parameters it receives can verify that, so the mock refuses
it with Vonage's status 14, as Vonage documents. Prints one JSON object for
the Rust test.
"""

import json
import sys
from importlib.metadata import version

import requests
from vonage import Auth, HttpClientOptions, Vonage
from vonage_sms import SmsMessage
from vonage_sms.errors import SmsError

TO = "15005550100"
FROM = "15005550006"


class OverHttp(requests.adapters.HTTPAdapter):
    """Sends what the SDK addresses to https://HOST over http."""

    def send(self, request, *args, **kwargs):
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, *args, **kwargs)


def client(host, auth):
    vonage = Vonage(auth, http_client_options=HttpClientOptions(rest_host=host))
    vonage.http_client._session.mount(f"https://{host}", OverHttp())
    return vonage


def send(vonage, text):
    try:
        response = vonage.sms.send(SmsMessage(to=TO, from_=FROM, text=text))
        first = response.messages[0]
        return {"status": first.status, "message_id": first.message_id}
    except SmsError as e:
        return {"error": str(e)}


def signed_request(vonage, host):
    """The SDK's signed-request path, with the parameters it sends."""
    response = vonage.http_client.post(
        host,
        "/sms/json",
        {"to": TO, "from": FROM, "text": "sms-canary sdk vonage signed & sealed"},
        "signature",
        "form",
    )
    first = response["messages"][0]
    return {"status": first["status"], "message_id": first.get("message-id")}


def main():
    host, key, secret, signature_secret, method = sys.argv[1:6]
    basic = client(host, Auth(api_key=key, api_secret=secret))
    signed = client(
        host,
        Auth(api_key=key, signature_secret=signature_secret, signature_method=method),
    )
    wrong_secret = client(host, Auth(api_key=key, api_secret="wrong"))
    wrong_signature = client(
        host,
        Auth(api_key=key, signature_secret="wrong", signature_method=method),
    )

    print(
        json.dumps(
            {
                "sdk_version": version("vonage"),
                "basic": send(basic, "sms-canary sdk vonage basic"),
                "signed_request": signed_request(signed, host),
                "signed_sms_send": send(signed, "sms-canary sdk vonage signed"),
                "wrong_secret": send(wrong_secret, "nope"),
                "wrong_signature": send(wrong_signature, "nope"),
                "balance": basic.account.get_balance().value,
            }
        )
    )


if __name__ == "__main__":
    main()
