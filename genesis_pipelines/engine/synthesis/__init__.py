"""Making synthetic rows: encoders, generators, constraints, conditions, relational training and sampling."""
