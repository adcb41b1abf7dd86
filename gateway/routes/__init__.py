"""The HTTP API: one module per route family, their dependencies and the OpenAPI document. Routes may
import any subpackage; nothing but the app factory imports routes.
"""
