//! How requests leave for targets: redirects are answered, not followed (a signed request or
//! an API key must not travel to wherever `Location` points), and an HTTP proxy named in the
//! environment carries every request (`tests/outbound_proxy.rs`, a process of its own since
//! the environment is process-wide).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::IntoResponse;
use common::*;
use tokio::net::TcpListener;

#[tokio::test]
async fn redirects_are_not_followed_and_errors_say_where_they_point() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(move || async move {
                (
                    http::StatusCode::PERMANENT_REDIRECT,
                    [(
                        http::header::LOCATION,
                        format!("http://{addr}/elsewhere?key=secret"),
                    )],
                )
                    .into_response()
            }),
        )
        .route(
            "/elsewhere",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { http::StatusCode::OK }
            }),
        );
    let _server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = target_toml(
        "moved",
        &format!("http://{addr}/mcp"),
        "[targets.credential_provider]\ntype = \"api_key\"\nheader = \"x-api-key\"\nvalue = \"k-123\"",
    );
    let sidecar = sidecar(&config).await;
    let status = wait_for_state(&sidecar.base, "moved", "failing").await;
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("308"), "{status}");
    assert!(
        error.contains(&format!(
            "redirects are not followed; it points to http://{addr}/elsewhere"
        )),
        "{status}"
    );
    assert!(
        !error.contains("key=secret"),
        "the query is left out: {error}"
    );
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "nothing went to the new place"
    );
}
