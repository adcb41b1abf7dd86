"""Reading Mistral's OCR request: `document` (document_url | image_url), `pages`, image, table and annotation options.

A JSON body holding `document` is Mistral-shaped and is answered in Mistral's shape; the gateway's own `image`
JSON and multipart form are untouched. Fields are typed strictly (a string where a boolean belongs is a 400
naming the field, not a guess). Differences from Mistral's API are listed in the README ("Mistral's OCR API").
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.documents.request import DocumentFile, DocumentOptions
from gateway.errors import InvalidRequest
from gateway.extraction.annotation_format import AnnotationFormat, read_annotation_format
from gateway.http.media_types import is_remote_url
from gateway.http.request_body import json_type
from gateway.security.remote_images import RemoteImageFetcher
from gateway.settings import Settings

_PAGE_SPEC = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_DOCUMENT_TYPES = ("application/pdf", "image/")


class MistralOptions(BaseModel):
    """Everything in the request but `document`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model: str | None = None
    id: str | None = None
    pages: list[int] | str | None = None
    include_image_base64: bool | None = None
    image_limit: int | None = Field(None, ge=0)
    image_min_size: int | None = Field(None, ge=0)
    table_format: Literal["markdown", "html"] | None = None
    extract_header: bool = False
    extract_footer: bool = False
    bbox_annotation_format: dict[str, Any] | None = None
    document_annotation_format: dict[str, Any] | None = None
    document_annotation_prompt: str | None = None
    include_blocks: bool | None = None  # the SDK always sends it; blocks are not produced (see the README)
    confidence_scores_granularity: None = None  # no confidence scores: only null is accepted
    annotation_model: str | None = Field(None, description="the gateway's own: the model that fills the schemas")

    @field_validator("pages")
    @classmethod
    def _pages(cls, value: list[int] | str | None) -> list[int] | str | None:
        if isinstance(value, list) and any(page < 0 for page in value):
            raise ValueError("page numbers start at 0")
        if isinstance(value, str) and not _PAGE_SPEC.fullmatch(value.replace(" ", "")):
            raise ValueError("must be page numbers and ranges from 0, e.g. '0,2-4'")
        return value


@dataclass(frozen=True)
class MistralRequest:
    """A checked Mistral OCR request: the document's bytes, the options, the annotation schemas."""

    file: DocumentFile
    options: MistralOptions
    document_format: AnnotationFormat | None
    bbox_format: AnnotationFormat | None

    def document_options(self, model: str) -> DocumentOptions:
        """The gateway's options for the same reading: 1-based pages, JSON, every element with its text."""
        return DocumentOptions(model=model, pages=one_based_pages(self.options.pages))

    def stored(self) -> dict[str, Any]:
        """What a job keeps to answer this request later (the document is stored as the job's upload)."""
        return {"mistral": self.options.model_dump(mode="json", exclude_none=True)}


def read_mistral_options(payload: dict[str, Any]) -> MistralOptions:
    """The options of a payload without its `document`; InvalidRequest naming the field."""
    try:
        return MistralOptions.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"][:1]) or "request"
        raise InvalidRequest(f"`{field}`: {first['msg']}", param=field) from None


def annotation_formats(options: MistralOptions, settings: Settings) -> tuple[AnnotationFormat | None, ...]:
    """(document format, bbox format), each checked; a prompt without a document format is a 400."""
    cap = settings.annotation_max_schema_bytes
    document = read_annotation_format(options.document_annotation_format, "document_annotation_format", max_bytes=cap)
    if options.document_annotation_prompt is not None and document is None:
        message = "`document_annotation_prompt` needs a `document_annotation_format`"
        raise InvalidRequest(message, param="document_annotation_prompt")
    bbox = read_annotation_format(options.bbox_annotation_format, "bbox_annotation_format", max_bytes=cap)
    return document, bbox


async def read_mistral_request(
    payload: dict[str, Any], settings: Settings, remote: RemoteImageFetcher | None
) -> MistralRequest:
    """Check every option before the document is decoded or fetched; then read the document."""
    document = payload.pop("document")
    options = read_mistral_options(payload)
    document_format, bbox_format = annotation_formats(options, settings)
    file = await read_document(document, settings, remote)
    return MistralRequest(file, options, document_format, bbox_format)


async def read_document(document: Any, settings: Settings, remote: RemoteImageFetcher | None) -> DocumentFile:
    """`document`'s bytes: a data: URL decoded, or an allow-listed http(s) URL fetched by the gateway."""
    if not isinstance(document, dict):
        raise InvalidRequest(f"`document` must be an object, not {json_type(document)}", param="document")
    kind = document.get("type")
    if kind == "document_url":
        url, param, name = document.get("document_url"), "document.document_url", document.get("document_name")
    elif kind == "image_url":
        url, param, name = document.get("image_url"), "document.image_url", None
        url = url.get("url") if isinstance(url, dict) else url
    elif kind == "file":
        message = "`document.type` file: this gateway stores no uploaded files; send a document_url (a data: URL)"
        raise InvalidRequest(message, param="document.type")
    else:
        raise InvalidRequest("`document.type` must be document_url or image_url", param="document.type")
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"`{param}` must be a data: URL or an http(s) URL", param=param)
    filename = name if isinstance(name, str) else ""
    if is_remote_url(url):
        if remote is None or not remote.enabled:
            message = f"`{param}`: remote URLs are not fetched by this gateway; send a data: URL"
            raise InvalidRequest(message, param=param)
        fetched = await remote.fetch(url, param=param, max_bytes=settings.max_body_bytes, pdf=True)
        return DocumentFile(fetched.data, filename, param)
    return DocumentFile(_decode_data_url(url, param), filename, param)


def _decode_data_url(url: str, param: str) -> bytes:
    header, comma, data = url.removeprefix("data:").partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64"):
        raise InvalidRequest(f"`{param}` must be a base64 data: URL (data:application/pdf;base64,...)", param=param)
    media_type = header.removesuffix(";base64").split(";")[0].strip().lower()
    if media_type and not media_type.startswith(_DOCUMENT_TYPES):
        raise InvalidRequest(
            f"`{param}`: documents of type {media_type} are not read here; send a PDF, a TIFF or an image",
            param=param,
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"`{param}` does not hold valid base64 data", param=param) from None


def one_based_pages(pages: list[int] | str | None) -> str | None:
    """Mistral's 0-based `pages` ([0, 2] or "0,2-4") as the gateway's 1-based spec ("1,3-5")."""
    if pages is None:
        return None
    if isinstance(pages, list):
        return ",".join(str(page + 1) for page in sorted(set(pages))) or None
    parts = []
    for part in pages.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        parts.append(f"{int(low) + 1}-{int(high) + 1}" if dash else str(int(low) + 1))
    return ",".join(parts)
