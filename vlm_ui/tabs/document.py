"""Document tab: a page image, PDF or TIFF through /v1/layout or /v1/ocr (or /v1/jobs when it is long).

The answer is shown four ways: the page with its boxes (drawn here, see overlay.py), the elements as a table
whose selected row shows its text and highlights its box, the Markdown rendered, and per-page status. The
files to download are written once per answer into a temporary folder Gradio serves.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from vlm_ui import document_view as view
from vlm_ui.gateway_client import FINISHED_JOB_STATUSES, DocumentOptions, DocumentTask, GatewayClient, GatewayError
from vlm_ui.notify import warn
from vlm_ui.overlay import draw_page, legend_html
from vlm_ui.pages import page_count, page_image, selected_pages
from vlm_ui.session_jobs import remember_job

# The UI's task choices and the model task each needs (`tasks` in /v1/models).
TASKS: dict[str, str] = {"Layout": "layout", "OCR": "ocr", "Region OCR": "grounding"}
_OVERLAY_FILES = 20  # overlay PNGs written per answer; a 500-page job still shows every page on demand
_JOB_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class _Form:
    """What the Document tab's inputs hold when Run is pressed."""

    file_path: str | None
    sample_label: str | None
    task_label: str
    model_name: str | None
    region: str
    page_spec: str
    dots: float | None
    force_job: bool


class _InputProblem(ValueError):
    """Something the person must fix before anything is sent to the gateway."""


@dataclass(frozen=True)
class Sample:
    label: str
    path: Path


def bundled_samples(root: Path | None = None) -> list[Sample]:
    """The test fixtures that ship with a checkout (MIT / Apache-2.0, licences beside them); none when the UI
    is installed without the repository, and the picker is then hidden."""
    folder = (root or Path(__file__).resolve().parents[2]) / "tests" / "fixtures" / "documents"
    wanted = [
        ("Academic page, two columns and tables (JPEG)", "dotsocr_demo_image1.jpg"),
        ("Page with a tricky reading order (PNG)", "dotsocr_reading_order.png"),
        ("Academic calendar, 2 pages (PDF)", "dotsocr_demo_pdf1.pdf"),
        ("Earnings report (PDF)", "olmocr_earnings.pdf"),
    ]
    return [Sample(label, folder / name) for label, name in wanted if (folder / name).is_file()]


def models_for(task_label: str, served: Sequence[Mapping[str, Any]]) -> list[str]:
    """Served models that offer the task, so the picker never offers a model the gateway would refuse."""
    needed = TASKS.get(task_label, "layout")
    return [str(m["id"]) for m in served if needed in (m.get("tasks") or [])]


def build(
    client: GatewayClient,
    *,
    served_models: gr.State,
    session_jobs: gr.State,
    job_pages: int,
) -> tuple[gr.Radio, gr.Dropdown]:
    """The tab's components and events; returns (task, model) so the app can fill the model list on load."""
    samples = bundled_samples()
    sample_paths = {s.label: s.path for s in samples}
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(
                label="Document (image, PDF or TIFF)",
                file_types=[".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pdf"],
                type="filepath",
                elem_id="document-file",
            )
            sample = gr.Dropdown(
                choices=list(sample_paths),
                value=None,
                label="…or a bundled sample (tests/fixtures/documents; MIT / Apache-2.0)",
                visible=bool(samples),
                elem_id="document-sample",
            )
            task = gr.Radio(list(TASKS), value="Layout", label="Task", elem_id="document-task")
            # allow_custom_value: the list is filled on page load and may be empty when the gateway was down.
            model = gr.Dropdown(choices=[], label="Model", allow_custom_value=True, elem_id="document-model")
            bbox = gr.Textbox(
                label="Region (Region OCR): x1,y1,x2,y2 in the page's pixels",
                placeholder="163,241,1536,705",
                visible=False,
                elem_id="document-bbox",
            )
            with gr.Row():
                pages = gr.Textbox(label="Pages", placeholder="all, or 1-3,7", elem_id="document-pages")
                dpi = gr.Number(value=200, label="DPI (PDF)", minimum=36, maximum=600, precision=0)
            as_job = gr.Checkbox(
                value=False, label=f"Run as a background job (automatic above {job_pages} pages)", elem_id="as-job"
            )
            run = gr.Button("Run", variant="primary", elem_id="document-run")
            summary = gr.Markdown(elem_id="document-summary")
            status = gr.Dataframe(
                headers=view.STATUS_COLUMNS, label="Per-page status", interactive=False, elem_id="document-status"
            )
            downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Column(scale=3):
            with gr.Row():
                page = gr.Dropdown(choices=[], label="Page shown", elem_id="document-page", scale=1)
                legend = gr.HTML(elem_id="document-legend")
            with gr.Row():
                overlay = gr.Image(
                    label="Boxes in reading order",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=760,
                    elem_id="overlay",
                    scale=3,
                )
                rendered = gr.Markdown(label="Markdown", elem_id="document-markdown", height=760, scale=2)
            elements = gr.Dataframe(
                headers=view.ELEMENT_COLUMNS,
                label="Elements (select a row to see its text and box)",
                interactive=False,
                wrap=True,
                elem_id="elements",
            )
            element_text = gr.Textbox(label="Selected element's text", lines=4, elem_id="element-text")

    document_state = gr.State(None)  # the last answer, for redrawing without calling the model again
    path_state = gr.State(None)  # the file it came from, for rendering its pages
    region_state = gr.State(None)

    def on_task(task_label: str, served: list[dict[str, Any]]) -> tuple[Any, Any]:
        choices = models_for(task_label, served)
        return (
            gr.update(choices=choices, value=choices[0] if choices else None),
            gr.update(visible=task_label == "Region OCR"),
        )

    task.change(on_task, [task, served_models], [model, bbox], api_visibility="private")
    # .upload / .input fire only on a person's action, so clearing one picker from the other cannot loop.
    upload.upload(lambda _: None, upload, sample, api_visibility="private")
    sample.input(lambda _: None, sample, upload, api_visibility="private")

    def run_document(
        file_path: str | None,
        sample_label: str | None,
        task_label: str,
        model_name: str | None,
        region: str,
        page_spec: str,
        dots: float | None,
        force_job: bool,
        jobs: list[dict[str, Any]] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to ask for a progress bar
    ) -> tuple[Any, ...]:
        jobs = list(jobs or [])
        try:
            form = _Form(file_path, sample_label, task_label, model_name, region, page_spec, dots, force_job)
            return _answer(form, jobs, progress)
        except (GatewayError, _InputProblem) as exc:
            # Said where the answer would be, and as a toast; the other panes are cleared rather than
            # left showing the previous document as if it were this one's.
            message = exc.readable() if isinstance(exc, GatewayError) else str(exc)
            warn(message)
            return (
                f"⚠️ **{message}**",
                [],
                None,
                gr.update(choices=[], value=None),
                "",
                None,
                "",
                [],
                "",
                None,
                None,
                None,
                jobs,
            )

    def _answer(form: _Form, jobs: list[dict[str, Any]], progress: gr.Progress) -> tuple[Any, ...]:
        path = _input_path(form.file_path, form.sample_label, sample_paths)
        api_task: DocumentTask = "layout" if form.task_label == "Layout" else "ocr"
        region_box = None
        if form.task_label == "Region OCR":
            region_box = view.parse_bbox(form.region or "")
            if region_box is None:
                raise _InputProblem("Region OCR needs a box: four numbers x1,y1,x2,y2 in the page's pixels.")
        options = DocumentOptions(
            model=form.model_name or None,
            bbox=",".join(f"{v:g}" for v in region_box) if region_box else None,
            pages=form.page_spec.strip() or None,
            dpi=int(form.dots) if form.dots else None,
        )
        chosen = selected_pages(form.page_spec or "", page_count(path))
        if form.force_job or len(chosen) > job_pages:
            document = _run_as_job(client, api_task, path, options, jobs, progress)
        else:
            progress(None, desc=f"{form.task_label} of {path.name} ({len(chosen)} page(s))…")
            document = client.document(api_task, path, options)
        numbers = view.page_numbers(document)
        first = numbers[0] if numbers else None
        image, rows, legend_value = _page_view(document, path, first, None, region_box)
        files = _write_downloads(document, path, region_box)
        return (
            view.summary_markdown(document),
            view.status_rows(document),
            files,
            gr.update(choices=numbers, value=first),
            legend_value,
            image,
            document.get("markdown") or "*(no text)*",
            rows,
            "",
            document,
            str(path),
            region_box,
            jobs,
        )

    run.click(
        run_document,
        [upload, sample, task, model, bbox, pages, dpi, as_job, session_jobs],
        [
            summary,
            status,
            downloads,
            page,
            legend,
            overlay,
            rendered,
            elements,
            element_text,
            document_state,
            path_state,
            region_state,
            session_jobs,
        ],
        api_name="run_document",
    )

    def show_page(
        number: int | None, document: dict[str, Any] | None, path: str | None, region_box: list[float] | None
    ) -> tuple[Any, Any, Any, str]:
        if not document or not path or number is None:
            return None, [], "", ""
        image, rows, legend_value = _page_view(document, Path(path), int(number), None, region_box)
        return image, rows, legend_value, ""

    page.input(
        show_page,
        [page, document_state, path_state, region_state],
        [overlay, elements, legend, element_text],
        api_visibility="private",
    )

    def select_element(
        event: gr.SelectData,
        number: int | None,
        document: dict[str, Any] | None,
        path: str | None,
        region_box: list[float] | None,
    ) -> tuple[Any, str]:
        if not document or not path or number is None:
            return gr.update(), ""
        row = event.row_value or []
        if len(row) < 2 or row[1] in (None, ""):
            return gr.update(), ""
        index = int(row[1])
        image, _, _ = _page_view(document, Path(path), int(number), index, region_box)
        text = str(row[-1]) if row[-1] else "(no text: boxes only, or a Picture)"
        return image, text

    # Gradio fills the SelectData parameter by its annotation; the listed inputs fill the others in order.
    elements.select(
        select_element,
        [page, document_state, path_state, region_state],
        [overlay, element_text],
        api_visibility="private",
    )
    return task, model


def _input_path(file_path: str | None, sample_label: str | None, samples: Mapping[str, Path]) -> Path:
    if file_path:
        return Path(file_path)
    if sample_label and sample_label in samples:
        return samples[sample_label]
    raise _InputProblem("Upload a document or pick a sample first.")


def _run_as_job(
    client: GatewayClient,
    task: DocumentTask,
    path: Path,
    options: DocumentOptions,
    jobs: list[dict[str, Any]],
    progress: gr.Progress,
) -> dict[str, Any]:
    """Submit, remember the job for the Jobs tab, poll it with a progress bar, then fetch the result."""
    job = client.submit_job(task, path, options)
    remember_job(jobs, job, filename=path.name)
    job_id = str(job["id"])
    while True:
        job = client.job(job_id)
        done = int(job.get("progress", {}).get("pages_done") or 0)
        total = job.get("progress", {}).get("pages_total")
        if total:
            progress((done, int(total)), desc=f"job {job_id}: {job.get('status')}", unit="pages")
        else:
            progress(None, desc=f"job {job_id}: {job.get('status')}")
        if job.get("status") in FINISHED_JOB_STATUSES:
            break
        time.sleep(_JOB_POLL_S)
    remember_job(jobs, job, filename=path.name)
    if job.get("status") != "succeeded":
        error = job.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        raise GatewayError(f"Job {job_id} {job.get('status')}" + (f": {message}" if message else "."), status=409)
    return client.job_result(job_id)


def _page_view(
    document: Mapping[str, Any],
    path: Path,
    number: int | None,
    selected: int | None,
    region_box: list[float] | None,
) -> tuple[Image.Image | None, list[list[Any]], str]:
    if number is None:
        return None, [], ""
    rows = view.element_rows(document, number)
    image = page_image(path, number)
    page = view.find_page(document, number)
    drawn = draw_page(image, page, selected=selected, region=region_box) if image is not None else None
    return drawn, rows, legend_html(view.categories(rows))


def _write_downloads(document: Mapping[str, Any], path: Path, region_box: list[float] | None) -> list[str]:
    """Markdown, JSON, CSV (layout) and overlay PNGs, named after the input so several downloads stay apart."""
    folder = Path(tempfile.mkdtemp(prefix="vlm-ui-"))
    stem = path.stem
    files = [folder / f"{stem}.md", folder / f"{stem}.json"]
    files[0].write_text(str(document.get("markdown") or ""), encoding="utf-8")
    files[1].write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    if any(page.get("elements") for page in document.get("pages") or []):
        files.append(folder / f"{stem}.csv")
        files[-1].write_text(view.document_csv(document), encoding="utf-8")
    for number in view.page_numbers(document)[:_OVERLAY_FILES]:
        image = page_image(path, number)
        if image is None:
            continue
        target = folder / f"{stem}-page{number}-boxes.png"
        draw_page(image, view.find_page(document, number), region=region_box).save(target)
        files.append(target)
    return [str(f) for f in files]
