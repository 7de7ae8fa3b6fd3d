//! `cairn`: the command-line client of Cairn. Every public RPC is a command; tables for
//! people, `--output json` for programs. Exit codes: 0 ok, 1 job or other
//! failure, 2 bad input, 3 not found, 4 not authenticated or permission denied, 5 unreachable.

mod cli;
mod client;
mod commands;
mod context;
mod error;
mod heatmap;
mod output;
mod watch;

use clap::Parser as _;

/// A reader that stops early (`cairn job list | head`) closes the pipe; printing then fails
/// with EPIPE, which Rust turns into a panic. Like other command-line tools, end quietly.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() {
    quiet_on_broken_pipe();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        let _telemetry = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .map(|ep| cairn_runtime::telemetry::init("cairn-cli", Default::default(), Some(&ep)));
        cairn_runtime::telemetry::install_propagator();
        match commands::run(cli).await {
            Ok(code) => code,
            Err(e) => e.report(),
        }
    });
    std::process::exit(code);
}
