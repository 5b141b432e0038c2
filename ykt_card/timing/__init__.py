"""Timing of a T-Union tap: card and PSAM timing profiles, and the tap analysed command by command."""
