"""Transports: each carries APDUs between a host-side Reader and a card-side endpoint serving a Card OS
(in-process, PC/SC with pcscd and vpcd, NFC through nfcpy)."""
