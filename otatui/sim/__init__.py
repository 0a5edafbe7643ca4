"""Simulated devices for the demo and the tests: an offline device on a serial link, and a device
on the local network that talks to a (local) connector exactly as it would to Murano."""
