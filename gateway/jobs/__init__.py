"""Durable jobs: the SQLite store (jobs, uploads, results, the result cache) and the runner that reads
documents in the background. Imports documents and everything below it; never routes.
"""
