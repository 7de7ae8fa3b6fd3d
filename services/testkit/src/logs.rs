//! Captures everything the process logs (all levels) so a test can assert that a secret never
//! appears. Installs one global subscriber per test binary.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static BUFFER: OnceLock<Buffer> = OnceLock::new();
static INSTALLED: OnceLock<()> = OnceLock::new();

/// A layer writing every event (all levels) into the capture buffer, for a test binary that
/// builds its own subscriber (the journeys also export spans).
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let writer = BUFFER.get_or_init(Buffer::default).clone();
    tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_ansi(false)
}

/// Starts capturing (idempotent). Call before starting servers.
pub fn capture() {
    use tracing_subscriber::layer::SubscriberExt as _;
    INSTALLED.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer()));
    });
}

/// Everything captured so far.
pub fn captured() -> String {
    BUFFER
        .get()
        .map(|b| String::from_utf8_lossy(&b.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned())
        .unwrap_or_default()
}
