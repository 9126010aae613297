"""Where the project keeps its files: the one spelling lives in genesis_pipelines.engine.core.layout (re-exported here)."""

from genesis_pipelines.engine.core.layout import PROJECT_ROOT, data_dir, specs_dir, warehouse_path

__all__ = ["PROJECT_ROOT", "data_dir", "specs_dir", "warehouse_path"]
