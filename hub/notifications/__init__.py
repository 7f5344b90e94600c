"""Notifications: preferences, the outbox, its dispatcher and the channels it delivers through."""
