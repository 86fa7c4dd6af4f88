"""One module per ``tfgw`` command; see ``gateway.cli``."""
