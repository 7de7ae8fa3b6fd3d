//! A scheduler process for the fault suite: configured by environment only (`CAIRN_*`), like
//! the real binary, so tests can SIGKILL it and start it again on the same port.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: cairn_scheduler::Config = cairn_runtime::config::load(
        &cairn_scheduler::Config::default(),
        None,
        &std::collections::BTreeMap::<String, String>::new(),
    )?;
    let _t = cairn_runtime::telemetry::init("cairn-test-scheduler", Default::default(), None);
    config.validate()?;
    let listener = cairn_runtime::grpc::bind(config.listen).await?;
    cairn_scheduler::run(config, listener, cairn_runtime::shutdown::on_signal()).await
}
