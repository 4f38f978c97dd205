"""Notifications: channels (apprise URLs), subscriptions, deliveries and the in-app inbox."""
