from gnnzoo.zoo.ids import init_id, run_id
from gnnzoo.zoo.record import SCHEMA, RecordError
from gnnzoo.zoo.store import Zoo, ZooEntry, ZooError, load_weights, save_weights

__all__ = ["SCHEMA", "RecordError", "Zoo", "ZooEntry", "ZooError", "init_id", "load_weights", "run_id", "save_weights"]
