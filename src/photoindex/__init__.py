"""photoindex: a self-hosted photo intelligence engine."""

__version__ = "0.1.0"
