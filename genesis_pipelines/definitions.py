"""The code location: everything under genesis_pipelines/defs, loaded by Dagster's defs-folder convention."""

import dagster as dg

from genesis_pipelines.defs.executor import genesis_executor
from genesis_pipelines.paths import PROJECT_ROOT


def build_definitions() -> dg.Definitions:
    # The defs folder through its component tree (`dg.ComponentTree`: the tree `dg.load_from_defs_folder` builds), not
    # `load_from_defs_folder` itself, which also imports every installed component library (entry points: dagster-aws,
    # in the dev extra and the deployment image, takes ~1.2 s to import) to list their component types in the repository
    # metadata, the UI's catalogue of components one can add from the UI. The tree is not attached to the definitions
    # either: the repository snapshot would import those libraries again to name the tree's component types. What it
    # serves is app-managed (UI-created) components and state-backed components' refresh; this location has neither (its
    # one component is configured by dataset specs), so loading skips both. Attach it (`component_tree=tree`) if a
    # StateBackedComponent is added.
    tree = dg.ComponentTree.for_project(PROJECT_ROOT)
    return dg.Definitions.merge(
        tree.build_defs(tree.defs_module_path),
        # in-process locally (the warehouse's single writer); GENESIS_EXECUTOR=k8s|ecs|multiprocess in production
        dg.Definitions(executor=genesis_executor()),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
