"""Drives the mock carrier with Twilio's official Python SDK, unchanged.

Usage: twilio_sdk.py BASE_URL ACCOUNT_SID AUTH_TOKEN
Prints one JSON object on stdout for the Rust test to assert on; exits
non-zero (with a traceback) on any unexpected failure.
"""

import datetime
import json
import sys
import time

import twilio
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

TO = "+15005550100"
OTHER = "+15005550101"
FROM = "+15005550006"


def main():
    base_url, account_sid, auth_token = sys.argv[1:4]
    client = Client(account_sid, auth_token)
    # The SDK builds every URL from its Api domain's base_url.
    client.api.base_url = base_url

    # Count the list requests, to prove the SDK really followed next_page_uri.
    list_requests = []
    original_request = client.http_client.request

    def counting_request(method, url, *args, **kwargs):
        if method == "GET" and "/Messages.json" in url:
            list_requests.append(url)
        return original_request(method, url, *args, **kwargs)

    client.http_client.request = counting_request

    # Whole seconds, as the SDK sends them; a little slack for clock rounding.
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    created = [client.messages.create(to=TO, from_=FROM, body="sdk %d" % i) for i in range(5)]
    client.messages.create(to=OTHER, from_=FROM, body="elsewhere")
    first = created[0]

    # Past the latency every message is delivered and has arrived (TO is owned).
    deadline = time.monotonic() + 10
    while len(client.messages.list(to=TO)) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    fetched = client.messages(first.sid).fetch()
    del list_requests[:]

    listed = client.messages.list(to=TO, date_sent_after=since, page_size=2)
    pages_for_all = len(list_requests)
    del list_requests[:]
    limited = client.messages.list(to=TO, date_sent_after=since, page_size=2, limit=3)
    pages_for_limited = len(list_requests)
    in_future = client.messages.list(
        date_sent_after=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    )

    errors = {}
    for to in ["+15005550002", "+15005550004"]:
        try:
            client.messages.create(to=to, from_=FROM, body="nope")
            errors[to] = None
        except TwilioRestException as e:
            errors[to] = {"code": e.code, "status": e.status}
    try:
        bad = Client(account_sid, "wrong-token")
        bad.api.base_url = base_url
        # (A list page that fails is a plain TwilioException in the SDK; create raises the REST one.)
        bad.messages.create(to=TO, from_=FROM, body="nope")
        errors["auth"] = None
    except TwilioRestException as e:
        errors["auth"] = {"code": e.code, "status": e.status}

    print(
        json.dumps(
            {
                "sdk_version": twilio.__version__,
                "created": [
                    {"sid": m.sid, "status": m.status, "to": m.to, "from": m.from_, "body": m.body}
                    for m in created
                ],
                "created_date_is_datetime": isinstance(first.date_created, datetime.datetime),
                "fetched": {
                    "sid": fetched.sid,
                    "status": fetched.status,
                    "direction": fetched.direction,
                    "error_code": fetched.error_code,
                    "num_segments": fetched.num_segments,
                    "date_sent_is_datetime": isinstance(fetched.date_sent, datetime.datetime),
                },
                "listed": [
                    {"sid": m.sid, "direction": m.direction, "status": m.status, "to": m.to}
                    for m in listed
                ],
                "list_pages": pages_for_all,
                "limited": [m.sid for m in limited],
                "limited_pages": pages_for_limited,
                "in_future": len(in_future),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
