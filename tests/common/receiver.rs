//! A receiver of posts on a local port, standing in for a webhook's or Slack's end:
//! it answers with scripted statuses in turn (200 once they run out, none for
//! [`HANG`]) and keeps every request for the test to read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// A scripted answer that never comes: the request hangs.
pub const HANG: u16 = 0;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
pub struct ScriptedReceiver {
    answers: Arc<Mutex<VecDeque<u16>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

async fn receive(State(receiver): State<ScriptedReceiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver.requests.lock().unwrap().push(Request { headers, body });
    let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    if status == HANG {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl ScriptedReceiver {
    /// Starts a receiver of posts to `path`; returns it and its URL.
    pub async fn start(path: &str, answers: &[u16]) -> (Self, String) {
        let receiver = ScriptedReceiver {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            ..ScriptedReceiver::default()
        };
        let app = axum::Router::new()
            .route(path, axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    /// The requests so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}
