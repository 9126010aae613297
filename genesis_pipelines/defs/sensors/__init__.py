"""Sensors built per dataset by the factory: new source data, and drift above the spec's threshold."""
