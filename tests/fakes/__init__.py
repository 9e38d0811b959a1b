"""Local fakes for the providers (Twilio's REST API, Telegram's Bot API) and a server helper."""
