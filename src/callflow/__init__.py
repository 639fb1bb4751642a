"""callflow: a FastAGI server for Asterisk call centers."""

__version__ = "0.1.0"
