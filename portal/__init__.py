"""The developer portal: browser UI (Flask + HTMX) and the management REST API."""
