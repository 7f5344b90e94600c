"""Notifications: what they are (mentions, the escalation policy, quiet hours) and the channels
they go out through (e-mail, signed webhooks). Their rows live in `hub.storage`, the actors that
deliver and remind in `hub.actors` (docs/notifications.md)."""
