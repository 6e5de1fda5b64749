"""Support review: release and dismiss held mails (deeds.py), the review page (web.py) and who
may use it (auth.py)."""
