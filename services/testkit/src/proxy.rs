//! A fault-injecting TCP proxy for the fault suite: it forwards a loopback port to an upstream
//! address and, on command, adds latency, stalls every connection (a partition: bytes are
//! held, nothing is closed), refuses new connections, or resets the open ones.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Forward every chunk after this delay, both ways.
    Latency(Duration),
    /// Forward nothing and close nothing: connections hang, new ones are accepted and hang.
    Partition,
    /// Close new connections at once (the port answers, the service does not).
    Refuse,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped to reset every open connection.
    resets: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<u64>>,
}

impl FaultProxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (fault, fault_rx) = watch::channel(Fault::None);
        let (resets, resets_rx) = watch::channel(0u64);
        let connections = Arc::new(Mutex::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                *count.lock().unwrap() += 1;
                if *fault_rx.borrow() == Fault::Refuse {
                    drop(client);
                    continue;
                }
                let (fault, resets) = (fault_rx.clone(), resets_rx.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    connection(client, server, fault, resets).await;
                });
            }
        });
        FaultProxy { addr, fault, resets, task, connections }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` + the address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the proxy does from now on (open connections included).
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Cuts every open connection at once, both sides.
    pub fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        *self.connections.lock().unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pumps both ways until either side closes or a reset is ordered.
async fn connection(
    client: TcpStream,
    server: TcpStream,
    fault: watch::Receiver<Fault>,
    mut resets: watch::Receiver<u64>,
) {
    resets.mark_unchanged();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, fault.clone());
    let down = pump(sr, cw, fault);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        // Both sockets are dropped mid-stream: the peers see a reset (unread data pending)
        // or an end of stream in the middle of a call.
        _ = resets.changed() => {}
    }
}

/// One direction: a reader stamps each chunk with its arrival, a writer forwards it once the
/// latency in force has passed since then. Like a real link, latency delays every byte by the
/// same amount without limiting throughput; a partition stops both, holding what is in flight.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: watch::Receiver<Fault>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(64);
    let mut reader_fault = fault.clone();
    let reader = async move {
        loop {
            // While partitioned, read nothing: the sender's window fills and it stalls.
            if !until_not_partitioned(&mut reader_fault).await {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send((Instant::now(), buf)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let mut writer_fault = fault;
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            // Bytes read just before a partition are held until it heals.
            if !until_not_partitioned(&mut writer_fault).await {
                return;
            }
            let latency = match *writer_fault.borrow() {
                Fault::Latency(d) => Some(d),
                _ => None,
            };
            if let Some(d) = latency {
                tokio::time::sleep_until(arrived + d).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Waits while the fault is a partition; false when the proxy is gone.
async fn until_not_partitioned(fault: &mut watch::Receiver<Fault>) -> bool {
    while *fault.borrow_and_update() == Fault::Partition {
        if fault.changed().await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A health server behind the proxy; whether it answers and how long a check takes.
    async fn check(proxy: &FaultProxy) -> (Option<bool>, Duration) {
        let started = Instant::now();
        (crate::serving(&proxy.url()).await, started.elapsed())
    }

    #[tokio::test]
    async fn latency_delays_without_breaking_and_partitions_and_refusals_stop_calls() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let proxy = FaultProxy::start(upstream).await;
        assert_eq!(check(&proxy).await.0, Some(true));
        proxy.set(Fault::Latency(Duration::from_millis(500)));
        let (ok, took) = check(&proxy).await;
        assert_eq!(ok, Some(true), "a slow link still carries calls");
        // A new connection and one call: at least one round trip of 300 ms.
        assert!(took >= Duration::from_millis(300), "{took:?}");
        proxy.set(Fault::Partition);
        assert_eq!(check(&proxy).await.0, None, "nothing passes a partition");
        proxy.set(Fault::Refuse);
        assert_eq!(check(&proxy).await.0, None, "refused");
        proxy.set(Fault::None);
        assert_eq!(check(&proxy).await.0, Some(true), "healed");
    }
}
