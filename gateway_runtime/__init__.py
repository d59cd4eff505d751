"""The gateway: serves deployed API revisions. Never imports the portal."""
