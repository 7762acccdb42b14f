//! Request extractors whose failures name the field at fault: a JSON body, a CSV
//! body, a query string and a numeric path id. axum's own extractors answer with plain
//! text; these answer with the API's JSON errors (a body over the route's limit is a
//! JSON 413).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body.
pub(crate) struct JsonBody<T>(pub(crate) T);

/// A query string.
pub(crate) struct QueryParams<T>(pub(crate) T);

/// A file sent as the request body (the imports), not read yet: the handler
/// checks who is asking first (a refused caller's upload is never read), then
/// reads it with [`CsvBody::read`], streamed and bounded by the route's limit.
pub(crate) struct CsvBody(Request);

impl CsvBody {
    /// Reads the body; 413 when it is over the route's limit.
    pub(crate) async fn read(self) -> Result<Bytes, ApiError> {
        Bytes::from_request(self.0, &())
            .await
            .map_err(|e| body_error(e, Some("file")))
    }
}

/// The API error for a body that could not be read: 413 when it is over the limit.
fn body_error(e: axum::extract::rejection::BytesRejection, field: Option<&str>) -> ApiError {
    let status = e.status();
    let mut error = ApiError::new(status, e.body_text());
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        error.error = "request body is larger than this route accepts".to_owned();
    } else if !status.is_client_error() {
        error.status = axum::http::StatusCode::BAD_REQUEST;
    }
    error.field = field.map(str::to_owned);
    error
}

impl<S> FromRequest<S> for CsvBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        Ok(Self(req))
    }
}

/// A numeric `{id}` path segment.
pub(crate) struct PathId(pub(crate) i64);

/// The field a serde error is about: the path where it happened, or the name in a
/// "missing field" message.
fn field_of(path: &serde_path_to_error::Path, message: &str) -> Option<String> {
    let path = path.to_string();
    if path != "." && !path.is_empty() {
        return Some(path);
    }
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    message.get(start..start + len).map(str::to_owned)
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, None))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().clone();
            let inner = e.into_inner();
            let message = inner.to_string();
            let field = field_of(&path, &message);
            match inner.classify() {
                serde_json::error::Category::Data => ApiError {
                    field,
                    ..ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        format!("invalid request body: {message}"),
                    )
                },
                _ => ApiError::bad_request(None, format!("request body is not JSON: {message}")),
            }
        })?;
        de.end()
            .map_err(|e| ApiError::bad_request(None, format!("trailing data after JSON: {e}")))?;
        Ok(Self(value))
    }
}

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().clone();
            let message = e.into_inner().to_string();
            let field = field_of(&path, &message);
            ApiError::bad_request(field.as_deref(), format!("invalid query: {message}"))
        })
    }
}

impl<S> FromRequestParts<S> for PathId
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(Some("id"), e.body_text()))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::bad_request(Some("id"), format!("`{raw}` is not an id")))
    }
}
