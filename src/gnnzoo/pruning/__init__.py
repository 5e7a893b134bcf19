"""Graph lottery tickets: sparse weights found by pruning a trained backbone (task=prune, pruning=<method>)."""
