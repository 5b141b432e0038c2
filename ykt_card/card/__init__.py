"""The card side of the T-Union application: the virtual card OS, its persistent state and its image."""
