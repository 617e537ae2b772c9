"""A hypothesis state machine that applies every operation to the compiled ``Engine`` and to the
``ReferenceEngine`` (the model) and checks after each step that both hold the same states and
answer every request alike: state changes on servers, DCs and locations (by id or index), bulk
replacement, pickling round trips, scalar and batch decisions."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from strategies import request_lists, requests, topologies

import aegisfwd as af
from aegisfwd.engine import available_isas

STATES = ("up", "draining", "down")


class EngineMatchesReference(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.topo: af.Topology | None = None

    @initialize(topo=topologies(), isa=st.sampled_from(available_isas()))
    def build(self, topo, isa):
        self.topo = topo
        self.isa = isa
        self.engine = af.Engine(topo, isa=isa)
        self.ref = af.ReferenceEngine(topo)

    def targets(self):
        t = self.topo
        return st.one_of(
            st.sampled_from(t.server_ids),
            st.sampled_from(t.dc_ids) if t.dc_ids else st.sampled_from(t.server_ids),
            st.sampled_from(t.location_ids),
            st.integers(0, len(t.server_ids) - 1),
        )

    @rule(data=st.data(), state=st.sampled_from(STATES))
    def set_state(self, data, state):
        target = data.draw(self.targets())
        self.engine.set_state(target, state)
        self.ref.set_state(target, state)

    @rule(data=st.data())
    def set_many_states(self, data):
        n = len(self.topo.server_ids)
        codes = data.draw(st.lists(st.sampled_from((0, 0, 1, 2)), min_size=n, max_size=n))
        self.engine.set_states(np.array(codes, dtype=np.uint8))
        for s, code in enumerate(codes):
            self.ref.set_state(s, STATES[code])

    @rule(data=st.data())
    def decide(self, data):
        request = data.draw(requests(self.topo))
        assert self.engine.decide(*request) == self.ref.decide(*request), request

    @rule(data=st.data(), mark=st.booleans())
    def decide_batch(self, data, mark):
        rows = data.draw(request_lists(self.topo, invalid=mark, max_size=30))
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
        errors = "mark" if mark else "raise"
        got = self.engine.decide_batch(*columns, errors=errors)
        expected = self.ref.decide_batch(*columns, errors=errors)
        assert got.equals(expected)

    @precondition(lambda self: self.topo is not None)
    @rule()
    def pickle_round_trip(self):
        self.engine = pickle.loads(pickle.dumps(self.engine))  # states travel with the tables
        assert self.engine.backend == "compiled"

    @invariant()
    def same_states(self):
        if self.topo is not None:
            assert self.engine.states.tolist() == self.ref.states.tolist()
            for s in range(0, len(self.topo.server_ids), 3):
                assert self.engine.get_state(s) == self.ref.get_state(s)


EngineMatchesReference.TestCase.settings = settings(stateful_step_count=20)  # the rest from the profile
TestEngineMatchesReference = EngineMatchesReference.TestCase
