"""Custom Rasa input channels. They run inside the Rasa environment (Python 3.10)."""
