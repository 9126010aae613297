"""A Component that turns every dataset spec in a folder into a synthetic-twin pipeline."""


import logging
from pathlib import Path

import dagster as dg

from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.engine.errors import GenesisError
from genesis_pipelines.engine.layout import specs_dir
from genesis_pipelines.engine.spec import discover_specs, load_spec

log = logging.getLogger(__name__)


class SyntheticTwinComponent(dg.Component, dg.Model, dg.Resolvable):
    """Adding a dataset is adding `<specs_dir>/<name>/dataset.yaml`: no code change.

    GENESIS_SPECS_DIR overrides `specs_dir` (tests and deployments point it elsewhere).
    """

    specs_dir: str = "resources/datasets"

    def spec_paths(self, project_root: Path) -> list[Path]:
        return discover_specs(specs_dir(self.specs_dir, root=project_root))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """One broken dataset (a bad spec, a missing source, an FK cycle it cannot break) is left out with a warning
        naming its spec and the problem (messages name tables and columns, never values); the others still load."""
        built = []
        for path in self.spec_paths(context.project_root):
            try:
                built.append(build_dataset_defs(load_spec(path)))
            except GenesisError as exc:
                log.warning("dataset spec %s left out of the code location: %s: %s", path, exc.__class__.__name__, exc)
        return dg.Definitions.merge(*built) if built else dg.Definitions()
