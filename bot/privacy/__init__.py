"""Privacy: redaction, encryption at rest, retention, forget-me and safe contact."""
