"""A Mistral OCR request answered: the document read by the OCR model, then its annotations, in Mistral's shape.

resolve the OCR model (`mistral-ocr-latest` -> GATEWAY_OCR_MODEL_ALIASES) and, with an annotation format,
the model that fills schemas ─► run_document (layout when the model has it: images, tables, headers)
─► shape_pages ─► annotations, concurrently, at most the extractor's page slots at once:
    document_annotation_format: the OCR text (capped) + the first page's image, one request
    bbox_annotation_format: each extracted picture's crop, one request each
─► {pages, model, document_annotation, usage_info} plus the gateway's own fields beside them
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.documents.images.decode import ImageRejected
from gateway.documents.images.prepare import prepare_decoded
from gateway.documents.page import DocumentTask
from gateway.documents.pipeline import DEFAULT_MODEL, DocumentPipeline, resolve_model, run_document
from gateway.documents.request import DocumentOptions
from gateway.documents.response import RenderedPage, document_status
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.extraction.annotate import Annotation, annotate
from gateway.extraction.annotation_format import AnnotationFormat
from gateway.mistral_ocr.pages import Picture, shape_pages
from gateway.mistral_ocr.request import MistralRequest
from gateway.upstream.served_models import ServedModel

_DOCUMENT_INSTRUCTION = "Fill the JSON schema from this document."
_PICTURE_INSTRUCTION = "This image was cut from a document page. Fill the JSON schema from it."


def ocr_model(pipeline: DocumentPipeline, requested: str | None) -> ServedModel:
    """The served OCR model a Mistral request names (an alias such as `mistral-ocr-latest` mapped first)."""
    name = requested or DEFAULT_MODEL
    name = pipeline.settings.ocr_model_aliases.get(name, name)
    return resolve_model(pipeline, DocumentOptions(model=name), "ocr")


def annotation_model(pipeline: DocumentPipeline, requested: str | None) -> ServedModel:
    """The request's `annotation_model`, else GATEWAY_ANNOTATION_MODEL, else the first served `extract` model."""
    name = requested or pipeline.settings.annotation_model
    if name:
        model = pipeline.models.get(name)
        if model is None:
            missing = ModelNotFound(name, pipeline.models)
            missing.param = "annotation_model"
            raise missing
        return model
    for model in pipeline.models.values():
        if "extract" in model.config.tasks:
            return model
    raise InvalidRequest(
        "no served model fills annotation schemas (none lists the `extract` task): name one with "
        "`annotation_model`, or set GATEWAY_ANNOTATION_MODEL",
        param="annotation_model",
    )


def check_models(pipeline: DocumentPipeline, request: MistralRequest) -> tuple[ServedModel, ServedModel | None]:
    """Both models, resolved before anything runs (a job checks them at submission)."""
    wants_annotations = request.document_format is not None or request.bbox_format is not None
    extractor = annotation_model(pipeline, request.options.annotation_model) if wants_annotations else None
    return ocr_model(pipeline, request.options.model), extractor


async def mistral_answer(
    pipeline: DocumentPipeline, request: MistralRequest, *, on_page: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Read the document and annotate it; the answer as a JSON-ready dict."""
    started = time.perf_counter()
    model, extractor = check_models(pipeline, request)
    task: DocumentTask = "layout" if "layout" in model.config.tasks else "ocr"
    options = request.options
    keep = bool(options.include_image_base64 or extractor is not None)
    pages = await run_document(
        pipeline,
        model,
        task,
        request.file,
        request.document_options(model.name),
        pool=pipeline.render_pool,
        slots=pipeline.page_slots,
        keep_images=keep,
        on_page=on_page,
    )
    shaped, pictures = await asyncio.to_thread(shape_pages, pages, options, keep_crops=request.bbox_format is not None)
    answer: dict[str, Any] = {
        "id": f"ocr-{uuid.uuid4().hex}",
        "object": "ocr",
        "pages": shaped,
        "model": model.name,
        "document_annotation": None,
        "usage_info": {"pages_processed": len(pages), "doc_size_bytes": len(request.file.data)},
        "status": document_status(pages),
        "usage": _usage(pages),
    }
    if extractor is not None:
        answer["annotation_model"] = extractor.name
        await _annotate_all(pipeline, extractor, request, pages, pictures, answer)
    answer["timings"] = {"total_ms": round((time.perf_counter() - started) * 1000, 2)}
    return answer


async def _annotate_all(
    pipeline: DocumentPipeline,
    extractor: ServedModel,
    request: MistralRequest,
    pages: list[RenderedPage],
    pictures: list[Picture],
    answer: dict[str, Any],
) -> None:
    slot = pipeline.page_slots.of(extractor.name).model  # annotations queue with the extractor's pages
    max_tokens = pipeline.settings.annotation_max_tokens

    async def one(fmt: AnnotationFormat, instruction: str, image: Any) -> Annotation:
        try:
            data_url = None if image is None else await asyncio.to_thread(_model_sized, image, extractor)
        except ImageRejected as exc:
            return Annotation(None, {"message": exc.message, "code": "annotation_image_rejected", "attempts": 0}, 0)
        async with slot:
            return await annotate(
                pipeline.upstream,
                extractor,
                fmt,
                instruction=instruction,
                image_data_url=data_url,
                max_tokens=max_tokens,
            )

    jobs: list[Coroutine[Any, Any, Annotation]] = []
    if request.document_format is not None:
        jobs.append(one(request.document_format, _document_instruction(request, answer, pipeline), _first_image(pages)))
    if request.bbox_format is not None:
        jobs += [one(request.bbox_format, _PICTURE_INSTRUCTION, picture.crop) for picture in pictures]
    results = await asyncio.gather(*jobs)
    if request.document_format is not None:
        document, *results = results
        answer["document_annotation"] = document.text()
        if document.error is not None:
            answer["document_annotation_error"] = document.error
    for picture, result in zip(pictures if request.bbox_format is not None else [], results, strict=True):
        picture.entry["image_annotation"] = result.text()
        if result.error is not None:
            picture.entry["image_annotation_error"] = result.error
        picture.crop = None  # the pixels are no longer needed


def _document_instruction(request: MistralRequest, answer: dict[str, Any], pipeline: DocumentPipeline) -> str:
    text = "\n\n".join(page["markdown"] for page in answer["pages"] if page["markdown"])
    cap = pipeline.settings.annotation_max_text_chars
    cut = f"\n[... the text is cut here, after {cap} characters]" if len(text) > cap else ""
    prompt = request.options.document_annotation_prompt or _DOCUMENT_INSTRUCTION
    return f"{prompt}\n\nThe document's text, read by OCR (Markdown):\n\n{text[:cap]}{cut}"


def _first_image(pages: list[RenderedPage]) -> Any:
    # vLLM is started with one image per prompt (launchers/serve_args.py): the first page stands for the document.
    return next((page.image for page in pages if page.image is not None), None)


def _model_sized(image: Any, model: ServedModel) -> str:
    return prepare_decoded(image, model.image, param="document").data_url()


def _usage(pages: list[RenderedPage]) -> dict[str, int]:
    usage: dict[str, int] = {}
    for page in pages:
        for key, value in (page.result.usage if page.result else {}).items():
            usage[key] = usage.get(key, 0) + value
    return usage
