"""A Component that turns every dataset spec in a folder into a synthetic-twin pipeline."""


import logging
import traceback
from pathlib import Path

import dagster as dg

from genesis_pipelines.defs.assets.common import key_name
from genesis_pipelines.defs.factory import build_dataset_defs
from genesis_pipelines.engine.core.errors import GenesisError
from genesis_pipelines.engine.core.layout import specs_dir
from genesis_pipelines.engine.core.spec import discover_specs
from genesis_pipelines.engine.pipeline import open_spec

log = logging.getLogger(__name__)


class SyntheticTwinComponent(dg.Component, dg.Model, dg.Resolvable):
    """Adding a dataset is adding `<specs_dir>/<name>/dataset.yaml`: no code change.

    GENESIS_SPECS_DIR overrides `specs_dir` (tests and deployments point it elsewhere).
    """

    specs_dir: str = "resources/datasets"

    def spec_paths(self, project_root: Path) -> list[Path]:
        return discover_specs(specs_dir(self.specs_dir, root=project_root))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """One broken dataset (a bad spec, a missing or unreadable source, an FK cycle it cannot break, a bug) never
        stops the others: it is logged as a warning and shown as its own failing asset, `<folder>/definition_error`,
        whose materialization fails with the problem (messages name files, tables and columns, never values)."""
        built, names = [], {}
        for path in self.spec_paths(context.project_root):
            try:
                spec = open_spec(path)
                if spec.name in names:  # two pipelines of one name would clash and break the whole location
                    raise GenesisError(f"dataset name {spec.name!r} is already used by {names[spec.name]}")
                built.append(build_dataset_defs(spec))
                names[spec.name] = path
            except Exception as exc:  # noqa: BLE001  (any failure stays this dataset's own)
                problem = describe_problem(exc)
                log.warning("dataset spec %s left out of the code location: %s", path, problem)
                built.append(dg.Definitions(assets=[broken_dataset_asset(path, problem)]))
        return dg.Definitions.merge(*built) if built else dg.Definitions()


def describe_problem(exc: BaseException) -> str:
    """A GenesisError's message (it names the file, table or column, never a value); for anything else only the
    exception's class and where it was raised (its message may quote data)."""
    if isinstance(exc, GenesisError):
        return f"{exc.__class__.__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "genesis_pipelines" in f.filename]
    where = f" in {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
    return f"internal error {exc.__class__.__name__}{where}"


def broken_dataset_asset(spec_path: Path, problem: str) -> dg.AssetsDefinition:
    name = key_name(spec_path.parent.name)

    @dg.asset(
        key=dg.AssetKey([name, "definition_error"]),
        group_name=name,
        metadata={"spec": str(spec_path), "error": problem},
        description=f"The dataset spec {spec_path} could not be turned into a pipeline: {problem}. Fix it and reload "
                    "the code location; materializing this asset only reports the problem.",
    )
    def definition_error() -> None:
        raise dg.Failure(description=f"dataset spec {spec_path}: {problem}", allow_retries=False)

    return definition_error
