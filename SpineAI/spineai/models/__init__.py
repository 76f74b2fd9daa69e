"""Shipped networks: architectures, model records (JSON) and checked weights."""
