"""Asset checks that gate the synthetic output."""
