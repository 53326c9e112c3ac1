"""Drives the mock carrier's SMS Gateway for Android with the app's official
Python client (android-sms-gateway), unchanged.

Usage: android_sdk.py BASE_URL USERNAME PASSWORD SIGNING_KEY CAPTURE_PORT

The client registers webhooks for the message's events at a small server of
this script (CAPTURE_PORT), sends a message, reads its state back and lists
the webhooks; every event the mock posted is checked against its signature
as the app's documentation specifies it (hex HMAC-SHA256 of the raw body
followed by X-Timestamp, keyed by the signing key). Prints one JSON object
for the Rust test; exits non-zero on any unexpected failure.
"""

import hashlib
import hmac
import http.server
import json
import sys
import threading
import time
from importlib.metadata import version

from android_sms_gateway import APIClient, Message, TextMessage, Webhook
from android_sms_gateway.enums import ProcessState, WebhookEvent

TO = "+15005550100"

captured = []


class Capture(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        captured.append(
            {
                "timestamp": self.headers.get("X-Timestamp", ""),
                "signature": self.headers.get("X-Signature", ""),
                "body": body,
            }
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def signature_ok(key, c):
    signed = c["body"] + c["timestamp"].encode()
    expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, c["signature"])


def main():
    base_url, username, password, signing_key, port = sys.argv[1:6]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    with APIClient(username, password, base_url=base_url) as client:
        for event in (WebhookEvent.SMS_SENT, WebhookEvent.SMS_DELIVERED):
            client.create_webhook(
                Webhook(id=None, url=f"http://127.0.0.1:{port}/events", event=event)
            )
        state = client.send(
            Message(phone_numbers=[TO], text_message=TextMessage(text="sms-canary sdk android"))
        )

        deadline = time.monotonic() + 10
        while len(captured) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        later = client.get_state(state.id)
        hooks = client.get_webhooks()

        unauthorized = None
        try:
            with APIClient(username, "wrong-password", base_url=base_url) as wrong:
                wrong.send(Message(phone_numbers=[TO], text_message=TextMessage(text="x")))
        except Exception as e:  # the client's own error for a 401
            unauthorized = getattr(e, "status_code", None)

    events = []
    for c in captured:
        body = json.loads(c["body"])
        tampered = dict(c, body=c["body"] + b" ")
        events.append(
            {
                "event": body["event"],
                "message_id": body["payload"]["messageId"],
                "signature_ok": signature_ok(signing_key, c),
                "tampered_refused": not signature_ok(signing_key, tampered),
            }
        )
    print(
        json.dumps(
            {
                "sdk_version": version("android-sms-gateway"),
                "sent": {"id": state.id, "state": state.state.value},
                "retrieved_state": later.state.value,
                "delivered": later.state == ProcessState.Delivered,
                "webhooks": sorted(h.event.value for h in hooks),
                "events": events,
                "unauthorized_status": unauthorized,
            }
        )
    )


if __name__ == "__main__":
    main()
