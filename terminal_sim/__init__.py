"""terminal_sim."""
