//! SimulateRetention over gRPC on restic's own policy test suite, the shared conformance
//! sample, and the snapshot index of a store.

mod common;

use cairn_api::v1::{
    SimulateRetentionRequest, SimulateRetentionResponse, Snapshot, StoreSnapshots,
    job_service_client::JobServiceClient,
};
use common::*;

/// A policy from the vector files (snake_case keys, keep_tags as lists) as proto JSON.
fn policy_json(p: &serde_json::Value) -> serde_json::Value {
    let mut p = p.clone();
    if let Some(tags) = p.get("keep_tags").cloned() {
        let sets: Vec<serde_json::Value> =
            tags.as_array().unwrap().iter().map(|set| serde_json::json!({"labels": set})).collect();
        p["keep_tags"] = serde_json::Value::Array(sets);
    }
    p
}

async fn simulate(
    client: &mut JobServiceClient<tonic::transport::Channel>,
    policy: &serde_json::Value,
    snaps: &serde_json::Value,
) -> Result<SimulateRetentionResponse, tonic::Status> {
    let items: Vec<serde_json::Value> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!({"id": s["id"], "time": s["time"], "labels": s.get("labels").or(s.get("tags")).cloned().unwrap_or_default()}))
        .collect();
    let req = serde_json::json!({"policy": policy_json(policy), "snapshots": {"items": items}});
    let req: SimulateRetentionRequest = cairn_api::json::from_json(&req.to_string()).expect("request JSON");
    client.simulate_retention(req).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn restic_policy_suite_and_conformance_sample_through_the_api() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    let mut client = r.jobs().await;
    let suite: serde_json::Value =
        serde_json::from_str(include_str!("../../retention/tests/data/restic-policy-suite.json")).unwrap();
    let cases = suite["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut checked = 0;
    for case in cases {
        let got = simulate(&mut client, &case["policy"], &suite["snapshots"]).await;
        if case.get("error").is_some() {
            let err = got.unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "case {}", case["index"]);
            assert!(err.message().starts_with("policy"), "{}", err.message());
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("case {}: {e}", case["index"]));
        assert_eq!(got.decisions.len(), suite["snapshots"].as_array().unwrap().len());
        let kept: Vec<&str> =
            got.decisions.iter().filter(|d| d.keep).map(|d| d.snapshot_id.as_str()).collect();
        let want: Vec<&str> = case["keep"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(kept, want, "restic case {} ({})", case["index"], case["policy"]);
        if let Some(reasons) = case.get("reasons").and_then(|r| r.as_object()) {
            for (id, want) in reasons {
                let d = got.decisions.iter().find(|d| d.snapshot_id == *id).unwrap();
                let want: Vec<String> =
                    want.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
                assert_eq!(d.reasons, want, "case {} snapshot {id}", case["index"]);
            }
        }
        checked += 1;
    }
    assert!(checked >= 39);
    let sample: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../retention/tests/data/retention-sample.json")).unwrap();
    for case in &sample {
        let got = simulate(&mut client, &case["policy"], &case["snapshots"]).await.unwrap();
        let mut kept: Vec<&str> =
            got.decisions.iter().filter(|d| d.keep).map(|d| d.snapshot_id.as_str()).collect();
        let mut want: Vec<&str> =
            case["keep"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        kept.sort();
        want.sort();
        assert_eq!(kept, want, "{}", case["name"]);
    }
    // Bad input names the field.
    for (policy, field) in [
        (serde_json::json!({"keep_within": "7x"}), "policy.keep_within"),
        (serde_json::json!({"keep_daily": -2}), "policy.keep_daily"),
        (serde_json::json!({"keep_daily": 1, "time_zone": "Nowhere/X"}), "policy.time_zone"),
    ] {
        let err = simulate(&mut client, &policy, &serde_json::json!([])).await.unwrap_err();
        assert!(err.message().starts_with(field), "{field}: {}", err.message());
    }
    let dup = serde_json::json!([{"id": "a", "time": "2024-01-01T00:00:00Z"}, {"id": "a", "time": "2024-01-02T00:00:00Z"}]);
    let err = simulate(&mut client, &serde_json::json!({"keep_last": 1}), &dup).await.unwrap_err();
    assert!(err.message().starts_with("snapshots.items[1].id"), "{}", err.message());
    r.stop().await;
}

#[tokio::test]
async fn the_index_lists_and_simulates_a_store_without_opening_it() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    let store = s.store("nas", 4).await;
    let task =
        s.backup("b", "nas", cairn_api::v1::OverlapPolicy::Skip, |t| t.labels = vec!["web".into()]).await;
    let task_id = task.name.rsplit('/').next().unwrap();
    let mut w = Worker::new(&r, "w", &[]).await;
    run(&r, "b").await;
    let l = w.acquire(1, std::time::Duration::from_secs(5)).await.remove(0);
    let snap = |id: &str, day: u32, labels: &[&str]| Snapshot {
        id: format!("{id:0<64}"),
        time: Some(cairn_runtime::time::to_timestamp(format!("2026-01-{day:02}T02:00:00Z").parse().unwrap())),
        labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let tag = format!("cairn-task={task_id}");
    let index = vec![StoreSnapshots {
        store: store.name.clone(),
        snapshots: vec![
            snap("a1", 1, &["web", &tag]),
            snap("b2", 2, &["web", &tag]),
            snap("c3", 3, &["other"]),
        ],
    }];
    w.client
        .complete_job(cairn_api::v1::CompleteJobRequest {
            lease: l.name.clone(),
            generation: l.generation,
            lease_token: Default::default(),
            outcome: Some(cairn_api::v1::complete_job_request::Outcome::Succeeded(Default::default())),
            snapshot_index: index,
        })
        .await
        .unwrap();
    let mut jobs = r.jobs().await;
    let all = jobs
        .list_snapshots(cairn_api::v1::ListSnapshotsRequest {
            parent: "projects/default".into(),
            store: "nas".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(
        all.iter().map(|s| &s.short_id[..2]).collect::<Vec<_>>(),
        vec!["c3", "b2", "a1"],
        "newest first"
    );
    assert_eq!(all[1].task, task.name);
    let web = jobs
        .list_snapshots(cairn_api::v1::ListSnapshotsRequest {
            parent: "projects/default".into(),
            labels: vec!["web".into()],
            task: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(web.len(), 2);
    // Filters (AIP-160), an order and pages over the index.
    let filtered = |filter: &str, order_by: &str, page_size: i32, page_token: String| {
        let req = cairn_api::v1::ListSnapshotsRequest {
            parent: "projects/default".into(),
            store: "nas".into(),
            filter: filter.into(),
            order_by: order_by.into(),
            page_size,
            page_token,
            ..Default::default()
        };
        let mut jobs = jobs.clone();
        async move { jobs.list_snapshots(req).await.map(|r| r.into_inner()) }
    };
    let ids = |r: &cairn_api::v1::ListSnapshotsResponse| {
        r.snapshots.iter().map(|s| s.short_id[..2].to_owned()).collect::<Vec<_>>()
    };
    for (filter, want) in [
        ("labels:web", vec!["b2", "a1"]),
        ("NOT labels:web", vec!["c3"]),
        (r#"time >= "2026-01-02T00:00:00Z""#, vec!["c3", "b2"]),
        (r#"labels:other OR time < "2026-01-02T00:00:00Z""#, vec!["c3", "a1"]),
        (r#"labels:web AND task = "b" AND time > "2026-01-01T12:00:00Z""#, vec!["b2"]),
    ] {
        let got = filtered(filter, "", 0, String::new()).await.unwrap();
        assert_eq!(ids(&got), want, "{filter}");
        assert_eq!(got.total_size, want.len() as i32, "{filter}");
    }
    let first = filtered("", "time asc", 2, String::new()).await.unwrap();
    assert_eq!((ids(&first), first.total_size), (vec!["a1".to_owned(), "b2".to_owned()], 3));
    let second = filtered("", "time asc", 2, first.next_page_token.clone()).await.unwrap();
    assert_eq!(ids(&second), vec!["c3"]);
    assert!(second.next_page_token.is_empty());
    for (filter, order) in [("size > 3", ""), (r#"time > "soon""#, ""), ("labels:", ""), ("", "hostname")] {
        let err = filtered(filter, order, 0, String::new()).await.unwrap_err();
        let field = if order.is_empty() { "filter" } else { "order_by" };
        assert_eq!(cairn_runtime::status::fields_of(&err), vec![field], "{filter}{order}: {}", err.message());
    }
    let sim = jobs
        .simulate_retention(SimulateRetentionRequest {
            policy: Some(cairn_api::v1::RetentionPolicy { keep_last: 1, ..Default::default() }),
            source: Some(cairn_api::v1::simulate_retention_request::Source::Stored(
                cairn_api::v1::StoredSnapshots {
                    store: "projects/default/connectors/nas".into(),
                    task: "b".into(),
                },
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let decided: Vec<(String, bool)> =
        sim.decisions.iter().map(|d| (d.snapshot_id[..2].to_owned(), d.keep)).collect();
    assert_eq!(decided, vec![("b2".to_owned(), true), ("a1".to_owned(), false)]);
    // A later job's list replaces the store's index (snapshots removed by another tool vanish).
    run(&r, "b").await;
    let l = w.acquire(1, std::time::Duration::from_secs(5)).await.remove(0);
    w.client
        .complete_job(cairn_api::v1::CompleteJobRequest {
            lease: l.name.clone(),
            generation: l.generation,
            lease_token: Default::default(),
            outcome: Some(cairn_api::v1::complete_job_request::Outcome::Succeeded(Default::default())),
            snapshot_index: vec![StoreSnapshots {
                store: store.name.clone(),
                snapshots: vec![snap("b2", 2, &["web", &tag])],
            }],
        })
        .await
        .unwrap();
    let left = jobs
        .list_snapshots(cairn_api::v1::ListSnapshotsRequest {
            parent: "projects/default".into(),
            store: store.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(left.len(), 1);
    r.stop().await;
}
