use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

#[tokio::test]
async fn audit_round_trip_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kaged.db")).unwrap();
    let w = store.audit_writer().unwrap();
    w.record(AuditEvent::new(
        EventType::DaemonStarted,
        None,
        json!({"pid": 1}),
    ))
    .await
    .unwrap();
    for i in 0..5 {
        w.record(
            AuditEvent::new(EventType::SessionStarted, Some("alice"), json!({"n": i}))
                .project("p1")
                .session(&format!("s{i}")),
        )
        .await
        .unwrap();
    }
    w.flush().await.unwrap();

    let all = store
        .audit_query(
            kaged_api::AuditParams {
                limit: Some(100),
                ..Default::default()
            },
            crate::AuditScope::All,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].kind, "daemon.started");
    assert_eq!(all[0].data, json!({"n": 4}));

    let page = store
        .audit_query(
            kaged_api::AuditParams {
                limit: Some(2),
                kind: Some("session.".into()),
                before: Some(all[1].id),
                ..Default::default()
            },
            crate::AuditScope::All,
        )
        .await
        .unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.session_id.clone().unwrap()).collect();
    assert_eq!(ids, vec!["s2", "s1"]);

    let by_actor = store
        .audit_query(
            kaged_api::AuditParams {
                limit: Some(10),
                actor: Some("nobody".into()),
                ..Default::default()
            },
            crate::AuditScope::All,
        )
        .await
        .unwrap();
    assert!(by_actor.is_empty());
}

#[tokio::test]
async fn audit_rows_cannot_be_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kaged.db");
    let store = Store::open(&path).unwrap();
    let w = store.audit_writer().unwrap();
    w.record(AuditEvent::new(EventType::DaemonStarted, None, json!({})))
        .await
        .unwrap();
    w.flush().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let err = conn
        .execute("UPDATE audit_events SET type = 'x'", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(conn.execute("DELETE FROM audit_events", []).is_err());
}

#[tokio::test]
async fn reopening_keeps_data_and_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kaged.db");
    let store = Store::open(&path).unwrap();
    store
        .upsert_project(ProjectRow {
            id: "demo".into(),
            root: "/tmp/demo".into(),
            name: "demo".into(),
            loaded_at: kaged_api::Timestamp::now(),
            loaded_by: "alice".into(),
        })
        .await
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.projects().await.unwrap().len(), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kaged.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[tokio::test]
async fn push_subscriptions_belong_to_their_operator_and_an_endpoint_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kaged.db")).unwrap();
    let row = |id: &str, user: &str, endpoint: &str, auth: &str| PushRow {
        id: id.into(),
        user_id: user.into(),
        endpoint: endpoint.into(),
        p256dh: "key".into(),
        auth: auth.into(),
        label: Some("phone".into()),
        created_at: kaged_api::Timestamp::now(),
    };
    store
        .upsert_push(row("a", "alice", "https://push.example/1", "x"))
        .await
        .unwrap();
    store
        .upsert_push(row("b", "bob", "https://push.example/2", "y"))
        .await
        .unwrap();
    // The same endpoint again: renewed keys replace the row, which keeps its id.
    let renewed = store
        .upsert_push(row("c", "alice", "https://push.example/1", "z"))
        .await
        .unwrap();
    assert_eq!((renewed.id.as_str(), renewed.auth.as_str()), ("a", "z"));
    let alice = store.push_subscriptions("alice").await.unwrap();
    assert_eq!(alice, vec![renewed]);
    assert!(
        !store.remove_push("alice", "b").await.unwrap(),
        "bob's is not alice's to revoke"
    );
    assert!(store.remove_push("bob", "b").await.unwrap());
    assert!(
        store
            .remove_push_endpoint("https://push.example/1")
            .await
            .unwrap()
    );
    assert_eq!(store.push_subscriptions("alice").await.unwrap(), vec![]);
}
