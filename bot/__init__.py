"""keyhunt's Slack bot and process: CLI, settings, store, Slack app, scheduling, HTTP server.

The fakes of AWS and Slack and the demo world are not here: they are dev/keyhunt_dev.
"""
