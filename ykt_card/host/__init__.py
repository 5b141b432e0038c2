"""The host side: typed APIs for the card and the PSAM, personalisation scripts, reading a whole card,
command annotations, and opening readers by name."""
