"""smpplib (PyPI) as an ESME against the mock carrier's SMSC: bind as a
transceiver, submit a GSM-7, a UCS-2 and a concatenated long message, and
read a delivery receipt for every part. Prints one JSON line:
{"sent": [ids], "receipts": [{"id", "text"}], "parts": n}.

usage: smpp_peer.py HOST PORT SYSTEM_ID PASSWORD
"""

import json
import sys

import smpplib.client
import smpplib.consts
import smpplib.gsm

host, port, system_id, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

sent = []
receipts = []


def on_sent(pdu):
    mid = pdu.message_id
    sent.append(mid.decode() if isinstance(mid, bytes) else mid)


def on_received(pdu):
    text = pdu.short_message
    text = text.decode("latin-1") if isinstance(text, bytes) else text
    rid = getattr(pdu, "receipted_message_id", None)
    if isinstance(rid, bytes):
        rid = rid.decode()
    receipts.append({"id": rid, "text": text, "esm_class": pdu.esm_class})


client = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=True)
client.set_message_sent_handler(on_sent)
client.set_message_received_handler(on_received)
client.connect()
client.bind_transceiver(system_id=system_id, password=password)

parts_total = 0
for text in ["sms-canary gsm @£$ [ok]", "sms-canary ucs2 Привет 😀", "sms-canary long " + "é" * 200]:
    parts, coding, esm_class = smpplib.gsm.make_parts(text)
    for part in parts:
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_INTL,
            source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            source_addr="15005550006",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr="15005550100",
            short_message=part,
            data_coding=coding,
            esm_class=esm_class,
            registered_delivery=True,
        )
        parts_total += 1

while len(sent) < parts_total or len(receipts) < parts_total:
    client.read_once()

client.unbind()
client.disconnect()
print(json.dumps({"sent": sent, "receipts": receipts, "parts": parts_total}))
