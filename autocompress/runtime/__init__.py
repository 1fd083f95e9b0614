"""Runtimes that translate with an exported artifact."""
