"""Schedules built per dataset by the factory."""
