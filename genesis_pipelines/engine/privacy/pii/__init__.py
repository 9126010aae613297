"""Find the columns that identify people and apply one policy to each: drop, fake, hash, mask or keep.

Detection, the training-time transform, the output-time fill and the leak check live in one package because they
must agree on kinds and on how values are normalised (normalise.py); if they drifted apart a real value could slip
through.

    findings   kinds, default policies, PiiFinding
    normalise  one normalised text per value, folding, Faker's name lists
    patterns   value and column-name patterns per kind
    detection  a column's kind; derived PII and mentions of real people; scan_tables
    policies   the training-time transforms (hash, pseudonym tokens, mask, derived templates)
    fakes      the output-time fill (Faker per kind and row locale, consistent fakes)
    leaks      the guards: real PII values and free-text snippets never in the output

Policies:
- ``fake``: the column is never learned; Faker values are generated at output time (the default). With the spec's
  ``pii_consistent_fake: true`` (needs GENESIS_HASH_KEY) the model instead learns keyed tokens of the real values
  and each token becomes a Faker value seeded by the token itself: the same real value maps to the same fake in
  every table and every run with that key (Customer.Address and Invoice.BillingAddress of one real address get one
  fake address), and no real value or unkeyed digest is stored. Synthetic rows are new people, so a synthetic
  invoice's billing address equals its synthetic customer's address only where the model reproduces the pair.
- ``drop``: the column is never learned and is left out of the output.
- ``hash``: keyed HMAC-SHA256 tokens are learned, so equal values stay equal (joins, counts) without the key
  making the tokens reversible by a dictionary attack.
- ``mask``: a shape-preserving mask (``Ab-12`` -> ``Xx-99``) is learned, keeping formats but no content.
- ``keep``: learned as is. The default for ``city``: a city is a quasi-identifier, not a direct identifier,
  and synthetic rows keep their analytic value only if geography survives; re-identification risk from
  quasi-identifier combinations is measured by the privacy report, not removed here.

Free text (comments, notes) that contains emails, phones or person names is kind ``free_text_pii`` and is replaced
by Faker sentences. Real free text never reaches the output in pieces either: the model keeps salted digests of
every 20-character shingle of the real text columns (`text_shingle_digests`), and `find_text_leaks` flags any
synthetic value that reproduces one.

Detection does not trust headers alone: first names, surnames and full names are also found from the values
(Faker's name lists of every locale, over distinct values), so a surname column under `Prénom 名前` or `c7` is
PII; a column of single words beside a first-name column needs fewer known surnames. A company column in a table
of people (an employer) is kind ``company``. A column whose values embed the row's own names (a photo path ending
in the surname, `jsmith`, a login equal to the first name), or its parent's, or that names real people of the
dataset in full (a note), is kind ``derived_pii``: it is learned as a template (`⟦source.word:case⟧` in place of
each name) and rendered with the row's fakes, so the synthetic path holds the synthetic surname of that row.

Fakes follow the row: its country column (name or ISO code) picks the Faker locale (`row_locales`), and every
faked column of the row (names, street, postcode, phone) is drawn from that locale, per locale group.

Hard rule: real values never appear in findings, exceptions or logs, only names, kinds, counts and rates.
"""

import importlib

# name -> submodule: the package is imported at spec load and code-location load (findings only), so each submodule
# (pandas, Faker) loads on first use of one of its names
_NAMES = {
    "detect_column": "detection", "scan_tables": "detection",
    "consistent_fakes": "fakes", "fill_synthetic": "fakes", "row_locales": "fakes",
    "DECLARED_KIND": "findings", "PII_KINDS": "findings", "PiiFinding": "findings", "person_tables": "findings",
    "SHINGLE": "leaks", "find_leaks": "leaks", "find_text_leaks": "leaks", "forbidden_values": "leaks",
    "read_text_guard": "leaks", "text_shingle_digests": "leaks",
    "normalize_value": "normalise",
    "hash_key_from_env": "policies", "mask_series": "policies", "prepare_for_training": "policies",
}


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DECLARED_KIND",
    "PII_KINDS",
    "PiiFinding",
    "SHINGLE",
    "consistent_fakes",
    "detect_column",
    "fill_synthetic",
    "find_leaks",
    "find_text_leaks",
    "forbidden_values",
    "hash_key_from_env",
    "mask_series",
    "normalize_value",
    "person_tables",
    "prepare_for_training",
    "read_text_guard",
    "row_locales",
    "scan_tables",
    "text_shingle_digests",
]
