"""Card issuance: the provincial issuer profiles and personalisation of virtual cards from them."""
