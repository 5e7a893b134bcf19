"""gnnzoo: weight-space learning on graph neural networks."""
import warnings as _warnings

__version__ = "0.1.0"

# Sparse CSR features are used on purpose (see gnnzoo.data.datasets.maybe_sparse); these beta notices
# would otherwise print on every run.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
_warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
