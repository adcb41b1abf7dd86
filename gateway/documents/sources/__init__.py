"""Pages from uploaded files: images, PDFs (PDFium in a process pool) and multi-page TIFFs."""
