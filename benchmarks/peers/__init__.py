"""Peer implementations the engine is compared with (installed as ``aegisfwd._peers``)."""
