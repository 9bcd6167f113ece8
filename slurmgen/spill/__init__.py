"""Spill: large payloads move to the node's LMDB and travel as SpillRefs."""
