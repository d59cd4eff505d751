"""What several broker connectors need alike: buffered subscriptions acknowledged by message, a fan-out hub, an
idle pool with a reaper, a reconnect policy and a TCP probe. Connectors import from here, never from each other."""
