"""Asset factories: each builds the assets of one dataset from its spec."""
