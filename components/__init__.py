"""Custom Rasa NLU components. They run inside the Rasa environment (Python 3.10)."""
