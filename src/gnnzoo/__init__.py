"""gnnzoo: weight-space learning on graph neural networks."""

import logging as _logging
import warnings as _warnings

__version__ = "0.1.0"

from gnnzoo.utils.paths import register_resolvers as _register_resolvers

_register_resolvers()  # ${gnnzoo.abspath:...} in conf/paths

# Sparse CSR features are used on purpose (see gnnzoo.data.datasets.maybe_sparse); these beta notices
# would otherwise print on every run.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
_warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


class _NoAdverts(_logging.Filter):
    def filter(self, record: _logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())
