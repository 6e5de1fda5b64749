"""Local stand-ins for the outside systems dispatch talks to, written to their documented APIs."""
