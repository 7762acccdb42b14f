//! Errors as the API reports them: a 4xx status with `{"error": "...", "field": "..."}`
//! for anything the client can fix, and a bare 500 (details only in the log) for
//! anything it cannot.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::{BadRow, StoreError};

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub error: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// The bad rows of a refused import.
    pub bad_rows: Vec<BadRow>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
            bad_rows: Vec::new(),
        }
    }

    /// A 422 naming `field`.
    pub fn invalid(field: &str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error).with_field(field)
    }

    /// A 400 naming `field` (the request could not be parsed).
    pub fn bad_request(field: Option<&str>, error: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, error);
        e.field = field.map(str::to_owned);
        e
    }

    /// A 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// A 403 naming `field`.
    pub fn forbidden(field: Option<&str>, error: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, error);
        e.field = field.map(str::to_owned);
        e
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// Maps a store error raised while acting on a request body: something the body
    /// refers to that does not exist is the body's fault (422 naming the field), not
    /// a missing resource (404).
    pub(crate) fn input(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, key } => {
                Self::invalid(&field_of(what), format!("{what} {key} does not exist"))
            }
            other => other.into(),
        }
    }
}

/// The request field a store entity is named by.
fn field_of(what: &str) -> String {
    match what {
        "tenant" | "city" | "supplier" => what.to_owned(),
        "house group" => "house_group".to_owned(),
        other => format!("{}_id", other.replace(' ', "_")),
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what, .. } => Self::not_found(what),
            StoreError::Invalid { field, message } => Self::invalid(field, message),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, message),
            StoreError::Import(report) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error: format!(
                    "{} bad rows; nothing imported (pass skip_bad_rows=true to import the rest)",
                    report.bad_rows.len()
                ),
                field: Some("file".to_owned()),
                bad_rows: report.bad_rows,
            },
            other => {
                tracing::error!(error = %other, "store failure while serving the API");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error, "field": self.field });
        if !self.bad_rows.is_empty() {
            body["bad_rows"] = json!(self.bad_rows);
        }
        (self.status, Json(body)).into_response()
    }
}

/// The API's answer to a path it does not have.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The API's answer to a method a path does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}
