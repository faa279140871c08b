"""The board inventory: name → host, port, user, key, profile, groups."""

from ._inventory import INVENTORY_FILE, Board, Inventory, load_inventory

__all__ = ["INVENTORY_FILE", "Board", "Inventory", "load_inventory"]
