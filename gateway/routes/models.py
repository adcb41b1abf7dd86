"""GET /v1/models: the OpenAI list of served models, with their tasks and live status."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.errors import ModelNotFound
from gateway.models.catalog import catalog_rows
from gateway.models.protocol import ModelCard, ModelList
from gateway.routes.dependencies import GatewayState, StateDep
from gateway.routes.error_responses import ERROR_RESPONSES
from gateway.upstream.served_models import ServedModel

router = APIRouter(tags=["OpenAI"])


def _card(model: ServedModel, state: GatewayState) -> ModelCard:
    return ModelCard(
        id=model.name,
        created=state.started_at,
        owned_by=model.config.hf_repo.split("/")[0],
        tasks=model.config.tasks,
        status="ready" if model.ready else "unavailable",
        max_model_len=model.max_model_len,
    )


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)
# A trailing slash answers the same (clients that join base URL and path add one); one entry in the OpenAPI document.
@router.get("/v1/models/", response_model=ModelList, response_model_exclude_none=True, include_in_schema=False)
async def list_models(state: StateDep, verbose: bool = False) -> ModelList:
    """Every model this gateway serves; `status` comes from the upstreams' last health probe.

    With `verbose=true`, also `catalog`: every configured model (served or not, including those vLLM cannot
    serve) with its size, KV cost per token, whether it fits alone on a 12 or 16 GB card and with what settings.
    """
    cards = [_card(model, state) for model in state.models.values()]
    if not verbose:
        return ModelList(data=cards)
    return ModelList(data=cards, catalog=catalog_rows(state.registry))


@router.get(
    "/v1/models/{model_id}",
    response_model=ModelCard,
    response_model_exclude_none=True,
    responses={404: ERROR_RESPONSES[404]},
)
async def retrieve_model(model_id: str, state: StateDep) -> ModelCard:
    """One served model."""
    model = state.models.get(model_id)
    if model is None:
        raise ModelNotFound(model_id, state.models)
    return _card(model, state)
