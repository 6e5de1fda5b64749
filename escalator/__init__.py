"""escalator: the SMTP server behind the escalation and critical-incident addresses."""

__version__ = "0.1.0"
