"""One module per tab: each builds its components inside the caller's gr.Blocks and wires its events."""
