"""keyhunt's Slack bot and process: CLI, settings, store, Slack app, scheduling, demo."""
