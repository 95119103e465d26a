"""Emulators of the outside systems (Workers AI, …) and a loopback server to run them on."""
