"""Human handoff: coordinators take conversations over Telegram, SMS or the web
console, and hand them back to the bot. See docs/handoff.md."""
