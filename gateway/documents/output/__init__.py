"""What a model said, read: tolerant JSON, layout elements with repairs, Markdown, and the drawn overlay."""
