"""The wiring: a request's way from the router through policy, the store and the runner."""
