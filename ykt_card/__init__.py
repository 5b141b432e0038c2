"""ykt_card."""
