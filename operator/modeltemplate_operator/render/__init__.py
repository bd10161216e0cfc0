"""Plan -> the desired objects (plain dicts). Pure."""
