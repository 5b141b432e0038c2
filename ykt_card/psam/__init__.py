"""The virtual PSAM: its OS (8070/8072/801A/80FA), its persistent state, issuance and image."""
