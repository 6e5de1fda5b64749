"""Ingress: the SMTP listener that stores each mail durably before it answers 250 (smtp.py)."""
