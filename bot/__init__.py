"""Wiring of the SayPro Classified Help Desk: configuration, the Application factory,
the database engine and sessions, templates, the offline fake Telegram and the CLI."""
