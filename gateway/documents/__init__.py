"""Documents: a file (image, PDF, TIFF) read into pages, each page through a model's prompt, the output
repaired and shaped into JSON, Markdown, CSV or an overlay. `sources/` makes pages, `images/` prepares them for
a model, `output/` reads what the model said. Imports upstream, security, models, http, observability, settings
and errors; never routes, chat or jobs.
"""
