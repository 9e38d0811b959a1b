"""Custom actions for the Waymark assistant (run by the rasa-sdk action server)."""
