//! Snapshot queries across two replicas with a scripted worker: asked on one replica, taken
//! on the other only by a worker the store's selector admits, answered in parts that come
//! back in order, paged with tokens; an asker that gives up stops the worker, and nobody
//! answering is UNAVAILABLE naming the selector.

mod common;

use std::time::Duration;

use cairn_api::v1::{
    AcquireQueriesRequest, AnswerQueryRequest, Connector, ListSnapshotEntriesRequest,
    ListSnapshotEntriesResponse, LocalStore, ReadSnapshotFileRequest, ReadSnapshotFileResponse,
    SnapshotEntry, SnapshotQuery, answer_query_request::Part, connector::Config as Cfg,
    read_snapshot_file_response::Part as FilePart, snapshot_query::Request,
};
use common::*;
use tonic::Code;

const SNAP: &str = "0123456789abcdef";

async fn store(s: &Stack) {
    s.connector(Connector {
        display_name: "nas".into(),
        config: Some(Cfg::LocalStore(LocalStore { path: "/srv/nas".into() })),
        repository_password: "store-pw".into(),
        worker_selector: [("zone".to_owned(), "eu".to_owned())].into(),
        ..Default::default()
    })
    .await;
}

async fn take(w: &mut Worker, wait: Duration) -> Vec<SnapshotQuery> {
    w.client
        .acquire_queries(AcquireQueriesRequest {
            worker_id: w.id.clone(),
            labels: w.labels.clone(),
            capacity: 4,
            wait: Some(cairn_runtime::time::to_duration(wait)),
            projects: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .queries
}

async fn answer(
    w: &mut Worker,
    q: &SnapshotQuery,
    seq: i32,
    last: bool,
    part: Part,
) -> Result<(), tonic::Status> {
    w.client
        .answer_query(AnswerQueryRequest {
            query: q.name.clone(),
            token: q.token.clone(),
            seq,
            last,
            part: Some(part),
        })
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_asked_on_one_replica_is_answered_through_another() {
    let s = stack().await;
    store(&s).await;
    let (a, b) = (s.replica(None, |_| {}).await, s.replica(None, |c| c.snapshot_read_max_bytes = 1000).await);
    let mut elsewhere = Worker::new(&b, "us-1", &[("zone", "us")]).await;
    let mut eu = Worker::new(&b, "eu-1", &[("zone", "eu")]).await;

    // A listing, paged: the worker says 5 entries, the page holds 2.
    let mut jobs = a.jobs().await;
    let ask = ListSnapshotEntriesRequest {
        parent: "projects/default".into(),
        store: "nas".into(),
        snapshot: SNAP.to_uppercase(),
        path: "/srv//www/".into(),
        page_size: 2,
        ..Default::default()
    };
    let asked = tokio::spawn({
        let (mut jobs, ask) = (jobs.clone(), ask.clone());
        async move { jobs.list_snapshot_entries(ask).await }
    });
    let q = loop {
        assert!(take(&mut elsewhere, Duration::ZERO).await.is_empty(), "the selector keeps zone=us out");
        if let Some(q) = take(&mut eu, Duration::from_secs(5)).await.pop() {
            break q;
        }
    };
    let store = q.store.clone().unwrap();
    assert_eq!(store.secrets.get("repository_password").map(String::as_str), Some("store-pw"));
    let Some(Request::List(l)) = &q.request else { panic!("{q:?}") };
    assert_eq!((l.snapshot.as_str(), l.path.as_str(), l.offset, l.limit), (SNAP, "/srv/www", 0, 2));
    let entry = |name: &str| SnapshotEntry {
        name: name.into(),
        path: format!("/srv/www/{name}"),
        ..Default::default()
    };
    let page = ListSnapshotEntriesResponse {
        snapshot: SNAP.into(),
        path: "/srv/www".into(),
        entries: vec![entry("a"), entry("b")],
        total_size: 5,
        ..Default::default()
    };
    answer(&mut eu, &q, 1, true, Part::Entries(page)).await.unwrap();
    let first = asked.await.unwrap().unwrap().into_inner();
    assert_eq!(first.entries.len(), 2);
    assert!(!first.next_page_token.is_empty(), "3 more to come");
    // The token carries the offset; it is refused for another directory.
    let next = tokio::spawn({
        let (mut jobs, ask) = (
            jobs.clone(),
            ListSnapshotEntriesRequest { page_token: first.next_page_token.clone(), ..ask.clone() },
        );
        async move { jobs.list_snapshot_entries(ask).await }
    });
    let q = take(&mut eu, Duration::from_secs(5)).await.pop().unwrap();
    let Some(Request::List(l)) = &q.request else { panic!("{q:?}") };
    assert_eq!(l.offset, 2);
    let last = ListSnapshotEntriesResponse {
        entries: vec![entry("c"), entry("d"), entry("e")],
        total_size: 5,
        ..Default::default()
    };
    answer(&mut eu, &q, 1, true, Part::Entries(last)).await.unwrap();
    assert!(next.await.unwrap().unwrap().into_inner().next_page_token.is_empty());
    let e = jobs
        .list_snapshot_entries(ListSnapshotEntriesRequest {
            path: "/etc".into(),
            page_token: first.next_page_token,
            ..ask.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&e), vec!["page_token"]);

    // A file in parts, in order, with the cap of the replica asked.
    let mut jobs_b = b.jobs().await;
    let read = ReadSnapshotFileRequest {
        parent: "projects/default".into(),
        store: "nas".into(),
        snapshot: SNAP.into(),
        path: "/srv/www/index.html".into(),
        ..Default::default()
    };
    let reading = tokio::spawn({
        let read = read.clone();
        async move {
            let mut stream = jobs_b.read_snapshot_file(read).await?.into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream.message().await? {
                out.push(m);
            }
            Ok::<_, tonic::Status>(out)
        }
    });
    let q = take(&mut eu, Duration::from_secs(5)).await.pop().unwrap();
    let Some(Request::Read(r)) = &q.request else { panic!("{q:?}") };
    assert_eq!((r.max_bytes, r.chunk_bytes), (1000, 256 * 1024));
    let file = |p: FilePart| Part::File(ReadSnapshotFileResponse { part: Some(p) });
    answer(&mut eu, &q, 1, false, file(FilePart::Entry(entry("index.html")))).await.unwrap();
    for i in 0..20_u8 {
        answer(&mut eu, &q, 2 + i32::from(i), false, file(FilePart::Data(vec![i; 10]))).await.unwrap();
    }
    answer(&mut eu, &q, 22, true, Part::File(ReadSnapshotFileResponse { part: None })).await.unwrap();
    let got = reading.await.unwrap().unwrap();
    assert!(matches!(&got[0].part, Some(FilePart::Entry(e)) if e.name == "index.html"));
    let data: Vec<u8> = got[1..]
        .iter()
        .flat_map(|m| match &m.part {
            Some(FilePart::Data(d)) => d.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(data, (0..20_u8).flat_map(|i| vec![i; 10]).collect::<Vec<_>>());

    // An asker that goes away stops the worker.
    let mut jobs_a = a.jobs().await;
    let gone = tokio::spawn(async move {
        let mut stream = jobs_a.read_snapshot_file(read).await.unwrap().into_inner();
        stream.message().await.unwrap();
        // Dropped after the entry.
    });
    let q = take(&mut eu, Duration::from_secs(5)).await.pop().unwrap();
    answer(&mut eu, &q, 1, false, file(FilePart::Entry(entry("index.html")))).await.unwrap();
    gone.await.unwrap();
    let mut refused = None;
    for seq in 2..200 {
        if let Err(e) = answer(&mut eu, &q, seq, false, file(FilePart::Data(vec![0; 10]))).await {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = refused.expect("the worker is told to stop");
    assert_eq!(e.code(), Code::Aborted);
    assert_eq!(cairn_runtime::status::reason_of(&e).as_deref(), Some("QUERY_GONE"));
    wait_for_rows(&s, 0).await;

    // Nobody answers: UNAVAILABLE, naming the selector.
    let e = jobs
        .list_snapshot_entries(ListSnapshotEntriesRequest {
            timeout: Some(cairn_runtime::time::to_duration(Duration::from_millis(500))),
            page_token: String::new(),
            ..ask
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("zone"), "{}", e.message());
    wait_for_rows(&s, 0).await;
}

/// Queries are deleted by their askers.
async fn wait_for_rows(s: &Stack, n: i64) {
    for _ in 0..100 {
        if count(&s.pool, "SELECT count(*) FROM scheduler.queries").await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("queries left behind");
}
