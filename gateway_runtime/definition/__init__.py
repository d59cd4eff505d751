"""The v4 API definition: its two spellings (forms), validation and what this gateway can run (checks,
capabilities), its secrets (secrets, slots) and finding its parts (parts)."""
