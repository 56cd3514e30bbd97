"""`evalmon webhook serve`: run the Langfuse prompt webhook app under uvicorn."""

from __future__ import annotations

import logging

import typer

from shared.errors import ConfigError

webhook_app = typer.Typer(help="Receive signed Langfuse prompt webhooks.", no_args_is_help=True)


@webhook_app.command("serve", epilog="Example: evalmon webhook serve --port 8787")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 to accept outside connections)."),
    port: int = typer.Option(8787, help="TCP port."),
    tolerance_s: float = typer.Option(300.0, "--tolerance-s", help="Accepted clock skew of signed timestamps."),
    body_timeout_s: float = typer.Option(
        10.0, "--body-timeout-s", min=0.1, help="A client that has not sent its whole body by then gets a 408."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve POST /webhooks/langfuse and GET /healthz (needs LANGFUSE_WEBHOOK_SECRET)."""
    import uvicorn

    from shared.langfuse.prompt import LangfusePromptManager
    from shared.langfuse.webhook import create_app
    from shared.settings import load_settings

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO))
    settings = load_settings()
    try:
        manager = LangfusePromptManager(settings)
        app = create_app(settings, prompt_manager=manager, tolerance_s=tolerance_s, body_timeout_s=body_timeout_s)
    except ConfigError as exc:
        typer.echo(f"error: {exc.one_line()}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"evalmon webhook: POST http://{host}:{port}/webhooks/langfuse, GET /healthz "
        f"(prompt cache invalidation: {app.state.invalidation.describe() if app.state.invalidation else 'process-local'})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


if __name__ == "__main__":  # pragma: no cover - `python -m shared.langfuse.webhook_cli serve`
    webhook_app()
