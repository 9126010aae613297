"""Guards against leaking real people: PII detection and policies, fakes, leak guards, the copy guard."""
