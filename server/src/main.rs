//! The `roomcast` binary: parse the configuration, install logging, bind, run
//! until SIGTERM or Ctrl-C, shut down gracefully.

use std::net::TcpListener;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use roomcast_server::config::Command;
use roomcast_server::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn install_tracing(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    let config = Config::parse();
    // One clear line on failure (no backtrace): the operator needs the cause.
    match actix_web::rt::System::new().block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(Command::Token(args)) = &config.command {
        let role: roomcast_server::auth::Role =
            serde_json::from_value(serde_json::Value::String(args.role.clone())).context("role")?;
        let token = roomcast_server::auth::mint(
            config.auth_secret.as_deref(),
            args.signing_key.as_deref(),
            &args.sub,
            &args.room,
            role,
            args.ttl,
        )?;
        println!("{token}");
        return Ok(());
    }
    if config.command == Some(Command::Migrate) {
        install_tracing(&config.log_format);
        let store = roomcast_server::server::connect_and_migrate(&config).await?;
        tracing::info!(store = store.kind(), "migrations applied");
        return Ok(());
    }
    install_tracing(&config.log_format);
    let listener = TcpListener::bind(config.bind)
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    listener.set_nonblocking(true)?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    actix_web::rt::spawn(async move {
        tracing::debug!("listening for signals");
        wait_for_signal().await;
        tracing::info!("signal received");
        on_signal.cancel();
    });
    roomcast_server::run(listener, config, shutdown).await?;
    Ok(())
}
