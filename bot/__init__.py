"""Waymark's app: the gateway around the Rasa dialogue engine."""
