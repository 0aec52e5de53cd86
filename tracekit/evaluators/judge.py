"""The judge model the LLM-based evaluators call: an OpenAI-compatible endpoint, or an Azure OpenAI deployment.

Keys come from --judge-api-key, else OPENAI_API_KEY (OpenAI-compatible) or AZURE_OPENAI_API_KEY (Azure); an Azure
endpoint with no key uses Entra ID through azure-identity's DefaultAzureCredential.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from tracekit.errors import TracekitError

AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
DEFAULT_AZURE_API_VERSION = "2024-10-21"


class JudgeNotConfigured(TracekitError):
    """An LLM-judged evaluator was asked for without a judge model."""


@dataclass(frozen=True)
class Judge:
    endpoint: str
    model: str
    api_key: str | None
    azure: bool
    api_version: str = DEFAULT_AZURE_API_VERSION

    def model_config(self):
        """The azure-ai-evaluation model configuration for this judge."""
        from azure.ai.evaluation import AzureOpenAIModelConfiguration, OpenAIModelConfiguration

        if self.azure:
            config = AzureOpenAIModelConfiguration(azure_endpoint=self.endpoint, azure_deployment=self.model,
                                                   api_version=self.api_version)
            if self.api_key:
                config["api_key"] = self.api_key
            return config
        return OpenAIModelConfiguration(type="openai", model=self.model, base_url=self.endpoint,
                                        api_key=self.api_key or "")

    def credential(self):
        """Entra ID for an Azure judge without a key; None otherwise."""
        if self.azure and not self.api_key:
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential()
        return None


def judge_from(endpoint: str | None, model: str | None, api_key: str | None,
               api_version: str | None = None) -> Judge:
    """The judge from the command's options and the environment; JudgeNotConfigured when incomplete."""
    if not endpoint or not model:
        missing = " and ".join(name for name, value in (("--judge-endpoint", endpoint), ("--judge-model", model))
                               if not value)
        raise JudgeNotConfigured(f"the built-in evaluators need a judge model: give {missing} (an OpenAI-compatible "
                                 "base URL, or an Azure OpenAI endpoint with the deployment as --judge-model)")
    host = urlparse(endpoint).hostname or ""
    azure = host.endswith(AZURE_HOST_SUFFIXES)
    key = api_key or os.environ.get("AZURE_OPENAI_API_KEY" if azure else "OPENAI_API_KEY")
    if not azure and not key:
        raise JudgeNotConfigured("no API key for the judge: give --judge-api-key or set OPENAI_API_KEY")
    return Judge(endpoint=endpoint, model=model, api_key=key, azure=azure,
                 api_version=api_version or DEFAULT_AZURE_API_VERSION)
