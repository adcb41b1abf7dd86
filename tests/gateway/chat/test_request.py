import base64

import orjson
import pytest

from gateway.chat.request import inline_image_urls, inspect_chat_request
from gateway.errors import InvalidRequest
from tests.images import chat_with_image, data_url


def _body(value: object) -> bytes:
    return orjson.dumps(value)


def test_reads_model_and_stream_flag() -> None:
    info = inspect_chat_request(_body({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}))
    assert (info.model, info.stream) == ("m", True)


def test_stream_defaults_to_false_and_null_is_false() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert inspect_chat_request(_body(base)).stream is False
    assert inspect_chat_request(_body({**base, "stream": None})).stream is False


def test_malformed_json_is_named() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        inspect_chat_request(b'{"model": ')


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3", b"null"])
def test_body_must_be_an_object(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        inspect_chat_request(body)


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"model": None}, "model"),  # null or absent: vLLM would pick its only model; a gateway cannot
        ({"model": 7}, "model"),
        ({"model": ["m"]}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": ["include_usage"]}, "stream_options"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": ["part"]}]}, "messages[0].content[0]"),
    ],
)
def test_wrong_types_name_the_field(patch: dict[str, object], param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **patch}
    with pytest.raises(InvalidRequest) as caught:
        inspect_chat_request(_body(body))
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_absent_model_is_named() -> None:
    with pytest.raises(InvalidRequest, match="`model` is required") as caught:
        inspect_chat_request(_body({"messages": [{"role": "user", "content": "hi"}]}))
    assert caught.value.param == "model"


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_real_images_of_every_common_format_pass(fmt: str, media_type: str) -> None:
    assert inspect_chat_request(_body(chat_with_image("m", data_url(fmt, media_type)))).model == "m"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("https://example.com/cat.png", "GATEWAY_REMOTE_IMAGE_DOMAINS is empty"),
        ("file:///etc/passwd", "must be a data: URL"),
        ("data:image/png,rawbytes", "must be a base64 data: URL"),
        ("data:text/plain;base64," + base64.b64encode(b"hello world, not an image").decode(), "not an image"),
        ("data:image/png;base64,!!!not-base64!!!", "valid base64"),
        (
            "data:image/png;base64," + base64.b64encode(b"%PDF-1.7 this is a pdf file").decode(),
            "holds a PDF: send it to /v1/ocr or /v1/layout",
        ),
        (
            "data:image/png;base64," + base64.b64encode(b"GIF87 is not quite an image").decode(),
            "does not hold an image",
        ),
    ],
)
def test_bad_image_urls_are_refused_naming_the_part(url: str, complaint: str) -> None:
    with pytest.raises(InvalidRequest, match=complaint) as caught:
        inspect_chat_request(_body(chat_with_image("m", url)))
    assert caught.value.param == "messages[0].content[0].image_url.url"


def test_image_part_without_url_string_is_refused() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}
    with pytest.raises(InvalidRequest) as caught:
        inspect_chat_request(_body(body))
    assert caught.value.param == "messages[0].content[0].image_url.url"


_HI = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_over_the_cap_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidRequest, match="over this gateway's limit of 100") as caught:
        inspect_chat_request(_body({**_HI, field: 101}), max_completion_tokens=100)
    assert caught.value.param == field


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_at_or_under_the_cap_or_without_one_passes(field: str) -> None:
    assert inspect_chat_request(_body({**_HI, field: 100}), max_completion_tokens=100).model == "m"
    assert inspect_chat_request(_body({**_HI, field: None}), max_completion_tokens=100).model == "m"
    assert inspect_chat_request(_body(_HI), max_completion_tokens=100).model == "m"
    assert inspect_chat_request(_body({**_HI, field: 10**9})).model == "m"  # no cap configured


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [-1, 1.5, "100", True, [100], {"n": 1}])
def test_token_limit_must_be_a_non_negative_integer(field: str, value: object) -> None:
    for cap in (None, 100):
        with pytest.raises(InvalidRequest, match="must be a non-negative integer") as caught:
            inspect_chat_request(_body({**_HI, field: value}), max_completion_tokens=cap)
        assert caught.value.param == field


def _two_remote_images() -> dict[str, object]:
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://images.example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": data_url()}},
    ]
    return {
        "model": "m",
        "temperature": 0.25,
        "messages": [
            {"role": "user", "content": content},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://cdn.example.com/b"}}]},
        ],
    }


def test_remote_urls_are_listed_with_their_place_when_the_gateway_fetches_them() -> None:
    info = inspect_chat_request(_body(_two_remote_images()), remote_images=True)
    assert [(ref.url, ref.param) for ref in info.remote_images] == [
        ("https://images.example.com/a.png", "messages[0].content[1].image_url.url"),
        ("http://cdn.example.com/b", "messages[1].content[0].image_url.url"),
    ]


def test_remote_urls_are_refused_when_the_gateway_does_not_fetch_them() -> None:
    with pytest.raises(InvalidRequest, match="remote image URLs are not fetched") as caught:
        inspect_chat_request(_body(_two_remote_images()))
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_data_urls_are_still_checked_when_remote_urls_are_allowed() -> None:
    assert inspect_chat_request(_body(chat_with_image("m", data_url())), remote_images=True).remote_images == ()
    for url in ("data:text/plain;base64,aGVsbG8=", "file:///etc/passwd", "ftp://images.example.com/a.png"):
        with pytest.raises(InvalidRequest):
            inspect_chat_request(_body(chat_with_image("m", url)), remote_images=True)


def test_inlining_replaces_only_the_remote_urls() -> None:
    body = _body(_two_remote_images())
    refs = inspect_chat_request(body, remote_images=True).remote_images
    inlined = orjson.loads(inline_image_urls(body, {ref: f"data:image/png;base64,{i}" for i, ref in enumerate(refs)}))
    expected = _two_remote_images()
    expected["messages"][0]["content"][1]["image_url"]["url"] = "data:image/png;base64,0"  # type: ignore[index]
    expected["messages"][1]["content"][0]["image_url"]["url"] = "data:image/png;base64,1"  # type: ignore[index]
    assert inlined == expected


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_a_truncated_image_is_refused_naming_the_part(fmt: str, media_type: str) -> None:
    # vLLM refuses it too, but with `param: null`; the gateway says which image it is.
    whole = base64.b64decode(data_url(fmt, media_type).partition(",")[2])
    url = f"data:{media_type};base64," + base64.b64encode(whole[: len(whole) // 2]).decode()
    with pytest.raises(InvalidRequest) as caught:
        inspect_chat_request(orjson.dumps(chat_with_image("m", url)))
    assert caught.value.param == "messages[0].content[0].image_url.url"
    assert "truncated" in caught.value.message


# --- content parts: only text and image_url reach vLLM ----------------------------------------------------------

_URL = "http://127.0.0.1:9/secret.png"


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ({"image_url": {"url": _URL}}, "has no `type`"),  # vLLM reads an untyped part by its keys
        ({"image_url": _URL}, "has no `type`"),
        ({"type": "input_image", "image_url": _URL}, "does not accept"),
        ({"type": "image_embeds", "image_embeds": "AAAA"}, "does not accept"),
        ({"type": "file", "file": {"file_data": "AAAA"}}, "does not accept"),
        ({"type": "video_url", "video_url": {"url": _URL}}, "read text and images only"),
        ({"type": "audio_url", "audio_url": {"url": _URL}}, "read text and images only"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "read text and images only"),
        ({"type": "text", "text": "hi", "image_url": {"url": _URL}}, "also carries `image_url`"),
        ({"type": "image_url", "image_url": {"url": data_url()}, "video_url": {"url": _URL}}, "also carries"),
        ({"type": "IMAGE_URL", "image_url": {"url": _URL}}, "does not accept"),
        ({"type": 7}, "does not accept"),
    ],
)
@pytest.mark.parametrize("remote_images", [False, True])
def test_every_other_content_part_is_refused_naming_it(
    part: dict[str, object], words: str, remote_images: bool
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}
    with pytest.raises(InvalidRequest, match=words) as caught:
        inspect_chat_request(_body(body), remote_images=remote_images)
    assert caught.value.param == "messages[0].content[1]"


def test_text_and_image_parts_with_harmless_extras_still_pass() -> None:
    parts = [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": data_url(), "detail": "high"}, "uuid": "page-1"},
    ]
    body = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": parts}]}
    assert inspect_chat_request(_body(body)).model == "m"
