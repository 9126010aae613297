"""What the data holds: semantic types, keys and foreign keys, rules found in the data, reference tables,
and how a column's values become numbers or categories to compare."""
