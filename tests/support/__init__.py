"""Helpers shared by the tests: servers, clients, scripted engines, speech."""
