//! The REST API served in-process on a real loopback socket (port chosen by the OS),
//! over a throwaway store holding the small test world, with four console logins:
//!
//! - `1001` operator of `etalon`; `2001` operator of `stolica`;
//! - `9000` supervisor of every tenant; `9001` supervisor of `etalon`.
//!
//! Passwords are `pw-<extension>`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dispatchline::config::Config;
use dispatchline::console::api::{ApiState, router};
use dispatchline::events::EventBus;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

use crate::store_db::{Dialect, TestDb};
use crate::store_world::{World, build};

const CONFIG: &str = r#"
[[operator]]
extension = "1001"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "2001"
password = "pw-2001"
tenants = ["stolica"]

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"

[[operator]]
extension = "9001"
password = "pw-9001"
role = "supervisor"
tenants = ["etalon"]
"#;

pub struct Api {
    pub base: String,
    pub client: Client,
    pub db: TestDb,
    pub world: World,
    pub events: EventBus,
    pub recordings: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.recordings);
    }
}

impl Api {
    /// Serves the API over a fresh store; `None` when PostgreSQL is skipped.
    pub async fn start(dialect: Dialect) -> Option<Self> {
        let db = TestDb::new(dialect).await?;
        let world = build(&db.store).await;
        let config = Config::parse(CONFIG, Path::new("api-test.toml")).expect("test config");
        db.store
            .seed_users(&config.seed_users(), &config.sip.realm)
            .await
            .expect("accounts seeded");
        let events = EventBus::default();
        let mut state = ApiState::new(db.store.clone(), events.clone(), Arc::new(config));
        let recordings = std::env::temp_dir()
            .join("dispatchline-tests")
            .join(format!("recordings-{}", crate::store_db::unique_name()));
        std::fs::create_dir_all(&recordings).unwrap();
        state.recordings_dir = recordings.clone();
        state.attachments_dir = recordings.join("attachments");
        let app = axum::Router::new().nest("/api/v1", router(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Some(Self {
            base: format!("http://{addr}/api/v1"),
            client: Client::new(),
            db,
            world,
            events,
            recordings,
            server,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, extension: &str) -> String {
        let response = self
            .client
            .post(self.url("/auth/token"))
            .json(
                &serde_json::json!({"extension": extension, "password": format!("pw-{extension}")}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login {extension}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    pub fn request(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        read(self.request(token, Method::GET, path).send().await.unwrap()).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        read(
            self.request(token, Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_raw(&self, token: &str, path: &str, body: &str) -> (u16, Value) {
        read(
            self.request(token, Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_csv(&self, token: &str, path: &str, csv: &str) -> (u16, Value) {
        read(
            self.request(token, Method::POST, path)
                .header("content-type", "text/csv")
                .body(csv.to_owned())
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

pub async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

/// Defines `mod $name { sqlite, postgres }` tests running `async fn $name(Api)`.
#[macro_export]
macro_rules! api_on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let api = $crate::api_server::Api::start($crate::store_db::Dialect::Sqlite).await.unwrap();
                super::$name(api).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(api) = $crate::api_server::Api::start($crate::store_db::Dialect::Postgres).await else {
                    return;
                };
                super::$name(api).await;
            }
        }
    )*};
}
