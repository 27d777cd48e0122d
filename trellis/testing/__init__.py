"""Test helpers: real processes on loopback ports, and fakes for unit tests of shells."""

from trellis.store.memory import MemoryBackend
from trellis.testing.etcd import EtcdServer, etcd_binary, free_ports

__all__ = ["EtcdServer", "MemoryBackend", "etcd_binary", "free_ports"]
