"""Channel adapters: SMS (Twilio), Telegram and web chat."""
