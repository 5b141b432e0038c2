"""Transports, each a reader half (apdu.reader.Reader) and a card half (apdu.endpoint.CardEndpoint) side by side:

- `inprocess`: a slot and a Card OS in it, at function-call speed;
- `air`: in-process ISO 14443-4, the PCD and PICC engines of apdu.isodep through a lossy channel;
- `pcsc`: pcscd with pyscard (reader), vsmartcard's vpcd driver (card), and the pcscd launcher;
- `nfc`: nfcpy, a reader on any device and an ISO 14443-4 card on the udp driver.
"""
