"""A Component that turns every dataset spec in a folder into a synthetic-twin pipeline."""


import os
from pathlib import Path

import dagster as dg

from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.engine.spec import discover_specs, load_spec


class SyntheticTwinComponent(dg.Component, dg.Model, dg.Resolvable):
    """Adding a dataset is adding `<specs_dir>/<name>/dataset.yaml`: no code change.

    GENESIS_SPECS_DIR overrides `specs_dir` (tests and deployments point it elsewhere).
    """

    specs_dir: str = "resources/datasets"

    def spec_paths(self, project_root: Path) -> list[Path]:
        root = Path(os.environ.get("GENESIS_SPECS_DIR") or self.specs_dir)
        return discover_specs(root if root.is_absolute() else project_root / root)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        specs = [load_spec(path) for path in self.spec_paths(context.project_root)]
        return dg.Definitions.merge(*[build_dataset_defs(spec) for spec in specs]) if specs else dg.Definitions()
