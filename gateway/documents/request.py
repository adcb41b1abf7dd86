"""Reading a document request (/v1/ocr, /v1/layout) from multipart form data or JSON.

Multipart: a `file` part plus form fields. JSON: `image` as a data URL or bare base64, plus the same fields;
or, with a remote-image allow-list, an http(s) URL of an image the gateway fetches (gateway/security/remote_images.py).
Every problem is an InvalidRequest naming the field.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.errors import BodyTooLarge, InvalidRequest
from gateway.http.media_types import REMOTE_IMAGES_OFF, is_remote_url
from gateway.http.request_body import json_object, read_body
from gateway.security.remote_images import RemoteImageFetcher

OutputFormat = Literal["json", "markdown", "csv", "png"]
Box = tuple[int, int, int, int]


class BatchTooLarge(InvalidRequest):
    """More files in one multipart request than GATEWAY_MAX_BATCH_FILES."""

    status_code = 413


class UnsupportedMediaType(InvalidRequest):
    """The body is neither multipart/form-data nor JSON."""

    status_code = 415


class DocumentOptions(BaseModel):
    """The fields a document request may carry besides the image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="a model with the task; default dots-ocr")
    mode: Literal["all", "detect", "web", "scene"] = Field(
        "all",
        description="layout: a document page's boxes, categories and text (all) or boxes only (detect); a web "
        "page's blocks (web); text lines spotted in a photo (scene). Models offer the modes they have prompts for.",
    )
    format: OutputFormat = "json"
    bbox: Box | None = Field(None, description="ocr: a region [x1, y1, x2, y2] in original-image pixels")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    picture_crops: bool = Field(False, description="embed Picture regions in the Markdown as PNG data URLs")
    pages: str | None = Field(None, description="PDF/TIFF pages to read, e.g. '1-3,7' (default all)")
    dpi: int = Field(200, ge=36, le=600, description="PDF rendering resolution (capped so no side passes 4500 px)")

    @field_validator("bbox", mode="before")
    @classmethod
    def _box_from_text(cls, value: Any) -> Any:
        # A form field arrives as text: "[10, 20, 300, 400]" or "10,20,300,400".
        if isinstance(value, str):
            text = value.strip().removeprefix("[").removesuffix("]")
            try:
                return [int(part) for part in text.split(",")]
            except ValueError:
                raise ValueError("must be four integers x1,y1,x2,y2") from None
        return value

    @field_validator("bbox")
    @classmethod
    def _box_is_a_box(cls, value: Box | None) -> Box | None:
        if value is not None:
            x1, y1, x2, y2 = value
            if min(value) < 0 or x1 >= x2 or y1 >= y2:
                raise ValueError("must satisfy 0 <= x1 < x2 and 0 <= y1 < y2")
        return value


@dataclass(frozen=True)
class DocumentFile:
    """One uploaded image, PDF or TIFF."""

    data: bytes
    name: str  # the upload's file name ("" for JSON input)
    param: str  # where the data came from ("file" or "image"), for error messages


@dataclass(frozen=True)
class DocumentRequest:
    """One or more documents (a multipart batch) and what to do with them."""

    files: list[DocumentFile]
    options: DocumentOptions
    extra: dict[str, Any] = field(default_factory=dict)  # the caller's `extra_fields` that were present


async def read_document_request(
    request: Request,
    *,
    max_body_bytes: int,
    max_files: int,
    extra_fields: tuple[str, ...] = (),
    remote_images: RemoteImageFetcher | None = None,
    payload: dict[str, Any] | None = None,
) -> DocumentRequest:
    """Parse the request by its content type; raise InvalidRequest (400/413/415) naming the problem.

    `extra_fields` are read aside into `extra` rather than as options (POST /v1/jobs: `task`). A JSON `image`
    that is an http(s) URL is fetched with `remote_images` when it is enabled, capped at `max_body_bytes`.
    `payload` is a JSON body the caller already read (`json_payload`).
    """
    if payload is not None:
        return await _from_json(payload, extra_fields, remote_images, max_body_bytes)
    content_type = _content_type(request)
    if content_type == "multipart/form-data":
        return await _from_multipart(request, max_body_bytes, max_files, extra_fields)
    if content_type in _JSON_TYPES:
        body = await read_body(request.scope, request.receive, max_body_bytes)
        return await _from_json(json_object(body), extra_fields, remote_images, max_body_bytes)
    raise UnsupportedMediaType(
        f"unsupported content type {content_type!r}: send multipart/form-data with a `file` part, "
        "or JSON with an `image` field"
    )


_JSON_TYPES = ("application/json", "")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_payload(request: Request, max_body_bytes: int) -> dict[str, Any] | None:
    """A JSON request's body as an object (read once: pass it on as `payload`); None for any other type."""
    if _content_type(request) not in _JSON_TYPES:
        return None
    return json_object(await read_body(request.scope, request.receive, max_body_bytes))


async def _from_multipart(
    request: Request, max_body_bytes: int, max_files: int, extra_fields: tuple[str, ...] = ()
) -> DocumentRequest:
    try:
        # One more file than allowed is read so that a batch over the limit is told so, not truncated.
        form = await request.form(max_files=max_files + 1, max_fields=16, max_part_size=64 * 1024)
    except BodyTooLarge:
        raise  # the body limit (gateway/http/request_body.py BodyLimit): a 413, not a malformed body
    except Exception as exc:  # python-multipart and Starlette raise several types for a malformed body
        raise InvalidRequest(f"the multipart body cannot be read: {exc}") from None
    try:
        uploads = form.getlist("file")
        if not uploads:
            raise InvalidRequest("a multipart request needs a `file` part holding the image", param="file")
        if len(uploads) > max_files:
            raise BatchTooLarge(f"a batch holds at most {max_files} files", param="file")
        files = []
        for upload in uploads:
            if not isinstance(upload, UploadFile):
                raise InvalidRequest("`file` must be a file part, not a plain field", param="file")
            data = await upload.read(max_body_bytes + 1)
            if len(data) > max_body_bytes:
                raise BodyTooLarge(f"`file` exceeds the limit of {max_body_bytes} bytes", param="file")
            files.append(DocumentFile(data, upload.filename or "", "file"))
        fields = {key: value for key, value in form.multi_items() if key != "file"}
        for key, value in fields.items():
            if not isinstance(value, str):
                raise InvalidRequest(f"`{key}` must be a plain form field, not a file", param=key)
        extra = {key: fields.pop(key) for key in extra_fields if key in fields}
        return DocumentRequest(files, _options(fields), extra)
    finally:
        await form.close()


async def _from_json(
    payload: dict[str, Any], extra_fields: tuple[str, ...], remote_images: RemoteImageFetcher | None, max_bytes: int
) -> DocumentRequest:
    extra = {key: payload.pop(key) for key in extra_fields if key in payload}
    image = payload.pop("image", None)
    if not isinstance(image, str) or not image:
        raise InvalidRequest("`image` is required: a data: URL or base64 of the image file", param="image")
    options = _options(payload)  # checked before anything is fetched
    if is_remote_url(image):
        data = await _fetch_image(image, remote_images, max_bytes)
    else:
        data = _decode_base64_image(image)
    return DocumentRequest([DocumentFile(data, "", "image")], options, extra)


async def _fetch_image(url: str, remote_images: RemoteImageFetcher | None, max_bytes: int) -> bytes:
    if remote_images is None or not remote_images.enabled:
        message = f"`image`: {REMOTE_IMAGES_OFF}; send the image as a data: URL or base64"
        raise InvalidRequest(message, param="image")
    return (await remote_images.fetch(url, param="image", max_bytes=max_bytes)).data


def _decode_base64_image(value: str) -> bytes:
    if value.startswith("data:"):
        header, comma, value = value[5:].partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidRequest("`image` must be a base64 data: URL (data:image/png;base64,...)", param="image")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("`image` does not hold valid base64 data", param="image") from None


def _options(fields: dict[str, Any]) -> DocumentOptions:
    try:
        return DocumentOptions.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "request"
        raise InvalidRequest(f"`{field}`: {first['msg']}", param=field) from None
