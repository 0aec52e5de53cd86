"""`tracekit evaluate`: evaluators run over the agent responses in the store, their results stored beside them.

    items.py     which responses to judge (one per agent response) and their input, read from the stored
                 conversation as the replay reads it, in the agent message format the evaluators take
    builtin.py   Foundry's built-in evaluators (Microsoft's azure-ai-evaluation, an optional extra) and user
                 evaluators (`package.module:function`)
    judge.py     the judge model: an OpenAI-compatible endpoint or an Azure OpenAI deployment
    runner.py    concurrency, retries with back-off, what was judged already, the summary
    results.py   each verdict as a `gen_ai.evaluation.result` event tied to the evaluated span

Results are ordinary OTLP log records, so they appear in `customEvents`, in the replay next to the answer they
judge, in the dashboards' evaluation tiles and alert rules, and they export to Application Insights where Foundry
reads them.
"""
