"""Test helpers: a real mosquitto broker on a free port, an MQTT probe client."""
