"""Whether synthetic rows give away the people in the training data, one module a concern.

`encoding` (rows as numbers, seeded samples) <- `copies` (exact copies), `grouping` (grouped holdouts), `distance`
(DCR / NNDR), `membership` (membership inference), `disclosure` (singling out, linkability, attribute inference,
k-anonymity), `dp` (epsilon spent) <- `audit` (the report and its gates). Imports go that one way.
"""
