"""Every span name, operation name and attribute key tracekit emits or reads, in one place.

Sources: OpenTelemetry GenAI semantic conventions v1.37-v1.40 (the shape Microsoft Foundry and Application Insights read
today), the Microsoft/Cisco multi-agent extensions, and the keys other instrumentations emit that the read side
understands (OpenInference, legacy indexed prompts). See ../shared/reference/semconv.md for the facts behind them.
"""

from __future__ import annotations

from typing import Final

# --- gen_ai.operation.name values -------------------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_CREATE_AGENT: Final = "create_agent"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_PLAN: Final = "plan"
# A framework runner's entry point (the Agents SDK's Runner.run), an internal invocation span in place of
# invoke_workflow since semantic-conventions-genai #571; emitted only with the latest conventions.
OP_HANDLE_CONVERSATION_TURN: Final = "handle_conversation_turn"
# Microsoft Foundry multi-agent operations (not OTel operations; documented by Foundry, emitted by Agent Framework).
OP_EXECUTE_TASK: Final = "execute_task"
OP_AGENT_TO_AGENT: Final = "agent_to_agent_interaction"
OP_AGENT_STATE: Final = "agent.state.management"
OP_AGENT_PLANNING: Final = "agent_planning"
OP_AGENT_ORCHESTRATION: Final = "agent_orchestration"

INFERENCE_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT})
MEMORY_OPERATIONS: Final = frozenset({"search_memory", "create_memory", "update_memory", "upsert_memory",
                                      "delete_memory", "create_memory_store", "delete_memory_store"})
AGENT_OPERATIONS: Final = frozenset({OP_INVOKE_AGENT, OP_CREATE_AGENT})
MULTI_AGENT_OPERATIONS: Final = frozenset(
    {OP_EXECUTE_TASK, OP_AGENT_TO_AGENT, OP_AGENT_STATE, OP_AGENT_PLANNING, OP_AGENT_ORCHESTRATION, OP_PLAN,
     OP_INVOKE_WORKFLOW}
)

# --- identity / request / response -------------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated, but Azure's exporter and the Foundry workbooks key on it
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_REASONING_LEVEL: Final = "gen_ai.request.reasoning.level"
GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID: Final = "gen_ai.request.previous_response.id"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_AGENT_VERSION: Final = "gen_ai.agent.version"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
GEN_AI_TASK_NAME: Final = "gen_ai.task.name"  # our name for the Foundry execute_task span's task (not in OTel)
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = "gen_ai.retrieval.query.text"  # opt-in content
GEN_AI_RETRIEVAL_DOCUMENTS: Final = "gen_ai.retrieval.documents"  # opt-in content: [{id, score}]
GEN_AI_RETRIEVAL_TOP_K: Final = "gen_ai.retrieval.top_k"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- tools ---------------------------------------------------------------------------------------------------------------
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_TRANSFER_MODE: Final = "gen_ai.transfer.mode"
GEN_AI_TRANSFER_TARGET_NAME: Final = "gen_ai.transfer.target.name"
GEN_AI_TRANSFER_SOURCE_NAME: Final = "gen_ai.transfer.source.name"  # ours: the agent handing off (OTel has caller.*)
TRANSFER_MODE_PASS_CONTROL: Final = "pass_control"  # the target takes over the conversation (Agents SDK handoffs)
TRANSFER_MODE_RETURN_TO_CALLER: Final = "return_to_caller"  # the target answers back to the source (agent as a tool)
TOOL_TYPE_FUNCTION: Final = "function"
TOOL_TYPE_EXTENSION: Final = "extension"
TOOL_TYPE_DATASTORE: Final = "datastore"

# --- hand-offs as other conventions and instrumentations record them (read side, tracekit/multi_agent.py) ---------------
GEN_AI_TRANSFER_TARGET_TYPE: Final = "gen_ai.transfer.target.type"
# On a remote invoke_agent (CLIENT) span: the immediate logical caller, when the library exposes it.
GEN_AI_CALLER_TYPE: Final = "gen_ai.caller.type"  # "agent" | "workflow"
GEN_AI_CALLER_NAME: Final = "gen_ai.caller.name"
GEN_AI_CALLER_AGENT_NAME: Final = "gen_ai.caller.agent.name"  # Microsoft Agent 365 SDK's agent-to-agent caller
# The OTel openai-agents-v2 processor's own hand-off spans (operation agent_handoff).
OP_AGENT_HANDOFF: Final = "agent_handoff"
GEN_AI_HANDOFF_FROM_AGENT: Final = "gen_ai.handoff.from_agent"
GEN_AI_HANDOFF_TO_AGENT: Final = "gen_ai.handoff.to_agent"

# --- provider names and provider-specific keys ---------------------------------------------------------------------------
PROVIDER_OPENAI: Final = "openai"
PROVIDER_AZURE_OPENAI: Final = "azure.ai.openai"
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "openai.response.system_fingerprint"
OPENAI_API_TYPE: Final = "openai.api.type"  # "chat_completions" | "responses"
OPENAI_AGENTS_GUARDRAIL_TRIGGERED: Final = "openai_agents.guardrail.triggered"  # ours, on Agents SDK guardrail spans

# --- tracekit's own keys -------------------------------------------------------------------------------------------------
TRACEKIT_REDACTED_COUNT: Final = "tracekit.redaction.masked_count"  # values masked on this span by the in-process policy
# The customMeasurements key (views and Azure export) of what tracekit priced a model call at, in USD (tracekit/cost.py).
TRACEKIT_COST_USD: Final = "tracekit.cost_usd"

# --- content (opt-in) ----------------------------------------------------------------------------------------------------
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
CONTENT_ATTRIBUTES: Final = frozenset(
    {GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS, GEN_AI_TOOL_DEFINITIONS,
     GEN_AI_TOOL_CALL_ARGUMENTS, GEN_AI_TOOL_CALL_RESULT, "gen_ai.evaluation.explanation"}
)

# --- token usage ---------------------------------------------------------------------------------------------------------
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"  # before cache_write (#440)
# Deprecated names still seen on the read side.
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
# The same counts and the streaming facts of a model call under every name the read side meets, the convention's
# own first (tracekit/call_metrics.py reads them): OpenLLMetry's flat names, Strands' `cache_write_input_tokens`,
# OpenInference's `llm.token_count.*_details.*`.
CACHE_READ_TOKEN_KEYS: Final = (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "gen_ai.usage.cache_read_input_tokens",
                                "llm.token_count.prompt_details.cache_read")
CACHE_WRITE_TOKEN_KEYS: Final = (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                                 "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.cache_write_input_tokens",
                                 "llm.token_count.prompt_details.cache_write")
REASONING_TOKEN_KEYS: Final = (GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "gen_ai.usage.reasoning_tokens",
                               "llm.token_count.completion_details.reasoning")
INPUT_TOKEN_KEYS: Final = (GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_PROMPT_TOKENS, "llm.token_count.prompt")
OUTPUT_TOKEN_KEYS: Final = (GEN_AI_USAGE_OUTPUT_TOKENS, GEN_AI_USAGE_COMPLETION_TOKENS, "llm.token_count.completion")
STREAM_KEYS: Final = (GEN_AI_REQUEST_STREAM, "gen_ai.is_streaming", "llm.is_streaming")
# Time to the first chunk: seconds (the convention; OpenLIT's `gen_ai.server.time_to_first_token`, which Strands
# sends in milliseconds), milliseconds (the Vercel AI SDK), or a timestamp (Langfuse's completion start time).
TIME_TO_FIRST_CHUNK_SECONDS_KEYS: Final = (GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "gen_ai.server.time_to_first_token")
TIME_TO_FIRST_CHUNK_MS_KEYS: Final = ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
COMPLETION_START_TIME_KEYS: Final = ("langfuse.observation.completion_start_time",)

# Finish reasons (gen_ai.response.finish_reasons / OutputMessage.finish_reason, v1.37 enum).
FINISH_STOP: Final = "stop"
FINISH_LENGTH: Final = "length"
FINISH_CONTENT_FILTER: Final = "content_filter"
FINISH_TOOL_CALL: Final = "tool_call"
FINISH_ERROR: Final = "error"

# --- evaluation -----------------------------------------------------------------------------------------------------------
EVENT_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
MICROSOFT_CUSTOM_EVENT_NAME: Final = "microsoft.custom_event.name"
# What Azure Monitor's distro adds to every span under an agent (its _GenAIMainAgentSpanProcessor); the Agents
# workbook's "main agent" views read them. tracekit's export computes them for stored spans.
MICROSOFT_MAIN_AGENT_NAME: Final = "microsoft.gen_ai.main_agent.name"
MICROSOFT_MAIN_AGENT_ID: Final = "microsoft.gen_ai.main_agent.id"
MICROSOFT_MAIN_AGENT_VERSION: Final = "microsoft.gen_ai.main_agent.version"
MICROSOFT_MAIN_AGENT_CONVERSATION_ID: Final = "microsoft.gen_ai.main_agent.conversation_id"

# --- metrics ---------------------------------------------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
# Bucket boundaries the spec gives for the two client metrics.
TOKEN_USAGE_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                              67108864)
OPERATION_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                                     81.92)
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"  # streamed calls (v1.38-v1.40)
# The same measurements as the latest semantic-conventions-genai names them (emitted with
# OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental): client-inference.md, token-metrics.yaml (#374, #536),
# and the agent/tool duration metrics (#322; #571 renamed gen_ai.invoke_agent.duration to gen_ai.invocation.duration).
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"  # counter, by modality
METRIC_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
METRIC_INFERENCE_USAGE_REASONING_TOKENS: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"
METRIC_INFERENCE_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"  # histogram
METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
METRIC_INVOCATION_DURATION: Final = "gen_ai.invocation.duration"  # invoke_agent (INTERNAL)
METRIC_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
TOKEN_MODALITY_UNKNOWN: Final = "unknown"  # the providers we instrument do not split usage by modality

# --- resource ----------------------------------------------------------------------------------------------------------------
SERVICE_NAME: Final = "service.name"
SERVICE_NAMESPACE: Final = "service.namespace"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
SERVICE_VERSION: Final = "service.version"

# --- legacy event-based content (<= v1.36) and other conventions the read side understands ----------------------------------
EVENT_SYSTEM_MESSAGE: Final = "gen_ai.system.message"
EVENT_USER_MESSAGE: Final = "gen_ai.user.message"
EVENT_ASSISTANT_MESSAGE: Final = "gen_ai.assistant.message"
EVENT_TOOL_MESSAGE: Final = "gen_ai.tool.message"
EVENT_CHOICE: Final = "gen_ai.choice"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
LEGACY_PROMPT_PREFIX: Final = "gen_ai.prompt."
LEGACY_COMPLETION_PREFIX: Final = "gen_ai.completion."
OPENINFERENCE_INPUT_MESSAGES_PREFIX: Final = "llm.input_messages."
OPENINFERENCE_OUTPUT_MESSAGES_PREFIX: Final = "llm.output_messages."
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"  # the request's parameters as JSON
OPENINFERENCE_PROVIDER: Final = ("llm.provider", "llm.system")  # e.g. "openai"; gen_ai.provider.name's counterpart

# Attributes lifted into typed store columns, so queries filter and group on them without parsing JSON.
# column name -> the attribute keys that feed it, first present wins.
TYPED_ATTRIBUTE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "operation_name": (GEN_AI_OPERATION_NAME,),
    "provider_name": (GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, *OPENINFERENCE_PROVIDER),
    "request_model": (GEN_AI_REQUEST_MODEL,),
    "response_model": (GEN_AI_RESPONSE_MODEL,),
    "response_id": (GEN_AI_RESPONSE_ID,),
    "agent_name": (GEN_AI_AGENT_NAME,),
    "agent_id": (GEN_AI_AGENT_ID,),
    "conversation_id": (GEN_AI_CONVERSATION_ID, "session.id", "thread_id"),
    "tool_name": (GEN_AI_TOOL_NAME,),
    "tool_call_id": (GEN_AI_TOOL_CALL_ID,),
    "error_type": (ERROR_TYPE,),
}
TYPED_INTEGER_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "input_tokens": INPUT_TOKEN_KEYS,
    "output_tokens": OUTPUT_TOKEN_KEYS,
}
