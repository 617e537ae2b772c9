"""A loopback edge proxy built on the engine: CONNECT in, egress from the decided dedicated IP.

Modules: ``config`` (the config file), ``connect`` (CONNECT heads), ``proxyv2`` (PROXY v2 with
application TLVs), ``source`` (source-bound sockets), ``engines`` (private or shared engine per
process), ``edge`` (one edge process), ``origin`` (a firewalled echo origin), ``supervisor``
(``proxy up``), ``control`` (the control endpoint), ``metrics`` (Prometheus), ``journal``,
``loadgen``, ``scenario`` and ``harness`` (the demo world and running it), ``demo``, ``cli``.
See docs/proxy.md.
"""
