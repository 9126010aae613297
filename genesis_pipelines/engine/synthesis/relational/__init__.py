"""Multi-table fit and sample: per-table generators plus the FK structure, generated parents first.

Keys are never learned as values: primary keys are regenerated, foreign keys are assigned to generated parents
following the learned children-per-parent distribution, so FK integrity holds by construction.

    model      the stored form (model.json): table models, key statistics, relations
    holdout    the train / holdout split and the source fingerprint
    structure  learning relations, parent features, inherited and constant columns, count models
    training   the three training steps (plan, each table, assemble) and `train`, all three in one process
    storage    versions on disk (LATEST), loading a model and its guards
    keys       key assignment: primary keys, children given to generated parents
    sampling   generating each table, then the whole dataset

The verbs the pipeline uses are re-exported here; everything else is imported from its module.
"""

from genesis_pipelines.engine.synthesis.relational.holdout import fingerprint_tables, split_holdout, split_tables
from genesis_pipelines.engine.synthesis.relational.model import RelationalModel, RelationStats, TableModel
from genesis_pipelines.engine.synthesis.relational.sampling import generate_all, generate_table, generate_table_chunks
from genesis_pipelines.engine.synthesis.relational.storage import (
                                                                   comparison_exclusions,
                                                                   latest_version,
                                                                   load_copy_guard,
                                                                   load_model,
                                                                   load_pii_guard,
                                                                   set_latest,
)
from genesis_pipelines.engine.synthesis.relational.training import train

__all__ = [
    "RelationStats", "RelationalModel", "TableModel", "comparison_exclusions", "fingerprint_tables", "generate_all",
    "generate_table", "generate_table_chunks", "latest_version", "load_copy_guard", "load_model", "load_pii_guard",
    "set_latest", "split_holdout", "split_tables", "train",
]
