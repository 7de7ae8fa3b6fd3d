//! A worker process for journeys: configured by environment only (`CAIRN_*`), like the real
//! binary, so tests can kill it with real signals.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: cairn_worker::Config = cairn_runtime::config::load(
        &cairn_worker::Config::default(),
        None,
        &std::collections::BTreeMap::<String, String>::new(),
    )?;
    let _t = cairn_runtime::telemetry::init("cairn-test-worker", Default::default(), None);
    cairn_worker::run(config, cairn_runtime::shutdown::on_signal()).await
}
