"""A Matrix resource client whose LLM is a list of OpenAI-compatible URLs (slurmgen's simulator).

This module runs inside Matrix's own venv (tools/matrix_env.sh), in Matrix's driver and
Ray actors; slurmgen never imports it. Hydra instantiates it from the bench's experiment
config (``resources.<name>._target_``), the extension point Matrix's own examples use
(e.g. its tau2 example's resource client).

Why it exists: Matrix's ``LLMResourceClient`` resolves ``matrix_service`` through
``Cli.get_app_metadata``, which reads the Ray Serve deployment its ``deploy_applications``
wrote (``matrix/app_server/app_api.py`` ``get_app_metadata``); it has no base-URL option.
This subclass changes only that lookup: Matrix's own ``utilize`` and ``make_request``
(an ``openai.AsyncOpenAI`` client per request, retries, sticky routing by hashing the
``multiplexed_model_id`` over the endpoint list) send every request unchanged.
"""

from __future__ import annotations

from typing import Any

from matrix.agents.orchestrator import BaseResourceClient
from matrix.agents.resource_client import LLMResourceClient
from omegaconf import OmegaConf


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class UrlLLMResourceClient(LLMResourceClient):
    """``LLMResourceClient`` with ``urls`` (``http://host:port``) instead of a Ray Serve app."""

    def __init__(self, resource_id: str, matrix_cli: Any, urls: list[str], model: str,
                 matrix_service: str = "", sampling_params: dict[str, Any] | None = None,
                 exec_params: dict[str, Any] | None = None) -> None:
        BaseResourceClient.__init__(self, resource_id)
        self.sampling_params = dict(_plain(sampling_params) or {})
        self.tools_params: dict[str, Any] = {}
        self.exec_params = dict(_plain(exec_params) or {})
        self.llm_metadata = {"model_name": model, "name": matrix_service or resource_id}
        self.urls = [u.rstrip("/") + "/v1" for u in _plain(urls)]
        self.endpoint_cache = self._endpoints  # what make_request asks for the live endpoints

    async def _endpoints(self, force_update: bool = False) -> list[str]:
        return self.urls
