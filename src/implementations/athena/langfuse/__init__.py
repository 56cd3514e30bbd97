"""athena's Langfuse glue: the prompt patterns of its workflow steps."""
