"""Reading sources (CSV/Parquet/DuckDB/S3) and the warehouse, watching them for changes, exporting outputs."""
