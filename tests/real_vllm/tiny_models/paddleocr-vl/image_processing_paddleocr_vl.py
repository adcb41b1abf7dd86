"""A stand-in for the image processor PaddleOCR-VL's hub checkpoint ships as remote code (`auto_map`).

The recipe serves PaddleOCR-VL with `--trust-remote-code`, and under that flag vLLM 0.32 reads the hub
processor's own attributes: `image_processor.max_pixels` for the profiling image and `min_pixels`/`max_pixels`
as the size keys (`vllm/model_executor/models/paddleocr_vl.py`). transformers' native processor keeps them in
`size` as `shortest_edge`/`longest_edge` only, and vLLM then fails to start (`AttributeError:
'PaddleOCRVLImageProcessor' object has no attribute 'max_pixels'`). The hub's code cannot be fetched here: this
class is transformers' processor (same resize and patching) with those two attributes, so the server runs the
launcher's argv unchanged.
"""

from transformers.models.paddleocr_vl.image_processing_paddleocr_vl import (
    PaddleOCRVLImageProcessor as NativePaddleOCRVLImageProcessor,
)


class PaddleOCRVLImageProcessor(NativePaddleOCRVLImageProcessor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.min_pixels = self.size["shortest_edge"]
        self.max_pixels = self.size["longest_edge"]
