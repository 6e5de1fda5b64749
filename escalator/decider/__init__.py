"""The decider: the decide worker that gives every accepted mail one decision and its planned
actions, in one transaction (processor.py)."""
