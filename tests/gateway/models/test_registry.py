from pathlib import Path

import pytest
import yaml

from gateway.models.registry import ConfigError, load_model_config, load_registry
from gateway.settings import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "model_configs"
PROMPTS = PROJECT_ROOT / "prompts"


def test_every_model_loads_with_an_engine() -> None:
    registry = load_registry(CONFIGS, PROMPTS)
    assert len(registry) == 12
    for config in registry.values():
        assert config.engine is not None
        assert config.serving is not None
        assert config.upstreams
        assert config.licence


def test_readers_follow_the_prompt() -> None:
    registry = load_registry(CONFIGS, PROMPTS)
    mocr = registry["dots-mocr"]
    assert [mocr.reader(key) for key in ("layout_all", "layout_web", "layout_scene", "ocr")] == [
        "dots_layout_json",
        "dots_web_json",
        "quad_lines",
        "markdown",
    ]
    assert (registry["deepseek-ocr-2"].reader("layout_all"), registry["deepseek-ocr-2"].box_grid) == (
        "grounding_tags",
        999,
    )
    assert (registry["lightonocr"].reader("layout_all"), registry["lightonocr"].box_grid) == ("marker_blocks", 1000)
    assert registry["paddleocr-vl"].reader("ocr") == "markdown"


def test_dots_ocr_carries_the_official_serving_and_sampling_facts() -> None:
    dots = load_registry(CONFIGS, PROMPTS)["dots-ocr"]
    assert dots.serving is not None
    assert "--chat-template-content-format" in dots.serving.extra_args
    assert dots.serving.trust_remote_code
    assert (dots.sampling.temperature, dots.sampling.top_p, dots.sampling.max_completion_tokens) == (0.1, 1.0, 16384)
    assert (dots.image.min_pixels, dots.image.max_pixels, dots.image.factor) == (3136, 11289600, 28)
    assert set(dots.prompts) == {"layout_all", "layout_detect", "ocr", "grounding"}
    assert dots.prompt_prefix == "<|img|><|imgpad|><|endofimg|>"


def _write(tmp_path: Path, name: str, changes: dict[str, object], drop: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load((CONFIGS / "qwen2-vl-2b.yaml").read_text())
    raw.update(changes)
    for key in drop:
        raw.pop(key)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "drop", "field"),
    [
        (
            {
                "sampling": {
                    "temperature": "hot",
                    "top_p": 1.0,
                    "max_completion_tokens": 1,
                    "max_completion_tokens_cap": 1,
                }
            },
            (),
            "sampling.temperature",
        ),
        ({"tasks": ["chat", "dance"]}, (), "tasks.1"),
        ({"colour": "blue"}, (), "colour"),
        ({}, ("architecture",), "architecture"),
        ({"upstreams": ["http://host:1/api"]}, (), "upstreams"),
        ({"image": {"min_pixels": 10, "max_pixels": 5, "factor": 28}}, (), "image"),
        ({"engine": None}, (), "(file)"),  # no engine and no reason
        ({"engine": "sglang"}, (), "engine"),
        ({"tasks": ["chat", "layout"]}, (), "(file)"),  # layout without its prompts
        ({"tasks": ["chat", "layout"], "prompts": {"layout_all": "qwen2-vl-2b/ocr.txt"}}, (), "(file)"),  # no boxes
        (
            {
                "sampling": {
                    "temperature": 0,
                    "top_p": 1,
                    "max_completion_tokens": 1,
                    "max_completion_tokens_cap": 1,
                    "repetition_detection": {"max_pattern_size": 4, "min_pattern_size": 8, "min_count": 3},
                }
            },
            (),
            "sampling.repetition_detection",
        ),
        (
            {
                "sampling": {
                    "temperature": 0,
                    "top_p": 1,
                    "max_completion_tokens": 1,
                    "max_completion_tokens_cap": 1,
                    "retry_temperatures": [0.2],
                    "extra_body": {"top_k": 1},  # greedy at any temperature: the retry would repeat the answer
                }
            },
            (),
            "sampling",
        ),
        ({"serving": {"port": 8103, "max_model_len": 99_999_999, "max_num_seqs": 1}}, (), "(file)"),
        ({"prompts": {"poetry": "qwen2-vl-2b/ocr.txt"}}, (), "prompts.poetry.[key]"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_field(
    tmp_path: Path, changes: dict[str, object], drop: tuple[str, ...], field: str
) -> None:
    path = _write(tmp_path, "qwen2-vl-2b", changes, drop)
    with pytest.raises(ConfigError) as caught:
        load_model_config(path, PROMPTS)
    assert str(path) in str(caught.value)
    assert f"`{field}`" in str(caught.value)


def test_name_must_match_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "other-name", {})
    with pytest.raises(ConfigError, match="field `name`"):
        load_model_config(path, PROMPTS)


def test_prompt_files_must_exist(tmp_path: Path) -> None:
    path = _write(tmp_path, "qwen2-vl-2b", {"prompts": {"ocr": "qwen2-vl-2b/missing.txt"}})
    with pytest.raises(ConfigError, match=r"field `prompts\.ocr`"):
        load_model_config(path, PROMPTS)


def test_not_yaml_and_not_a_mapping_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: [unclosed")
    (tmp_path / "b.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="cannot be read as YAML"):
        load_model_config(tmp_path / "a.yaml", PROMPTS)
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_model_config(tmp_path / "b.yaml", PROMPTS)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model configs"):
        load_registry(tmp_path, PROMPTS)
