"""Offline testing kit: local AWS and Kubernetes emulators, and pytest fixtures for DAG authors.

Nothing in here is imported by the operators; it is for tests, the demo and the benchmarks.
"""
