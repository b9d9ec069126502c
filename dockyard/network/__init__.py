"""Bridges, veth pairs, addresses and published ports."""
