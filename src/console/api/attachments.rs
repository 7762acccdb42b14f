//! `/tickets/{id}/attachments`: files attached to a ticket (executors' photos,
//! scanned acts). Upload is the raw body with its `Content-Type` and `?name=`;
//! only JPEG, PNG, WebP and PDF are taken, up to [`MAX_FILE`] bytes each, and the
//! first bytes must match the type given. Files are written under
//! `<data dir>/attachments/<ticket>/` with a name the engine chooses, and served
//! back with their stored type (never sniffed) to whoever may read the ticket.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::store::TicketId;
use crate::store::attachments::{Attachment, NewAttachment};

/// Largest file taken.
pub(crate) const MAX_FILE: usize = 10 * 1024 * 1024;

/// The types taken, their extension and how their files begin.
const TYPES: [(&str, &str, &[u8]); 4] = [
    ("image/jpeg", "jpg", &[0xFF, 0xD8, 0xFF]),
    (
        "image/png",
        "png",
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
    ),
    ("image/webp", "webp", b"RIFF"),
    ("application/pdf", "pdf", b"%PDF-"),
];

/// `?name=` of an upload.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    name: Option<String>,
}

async fn visible_ticket(state: &ApiState, who: &Principal, id: i64) -> Result<(), ApiError> {
    let tenants = state.store.ticket_tenants(&[TicketId(id)]).await?;
    if tenants.get(&TicketId(id)).is_some_and(|t| who.sees(t)) {
        Ok(())
    } else {
        Err(ApiError::not_found("ticket"))
    }
}

/// The type of an upload, if it is one taken and its bytes agree.
fn check_type(declared: &str, body: &[u8]) -> Result<(&'static str, &'static str), ApiError> {
    let declared = declared.split(';').next().unwrap_or_default().trim();
    let (ty, ext, magic) = TYPES
        .iter()
        .find(|(t, _, _)| t.eq_ignore_ascii_case(declared))
        .ok_or_else(|| ApiError::invalid("content_type", "JPEG, PNG, WebP or PDF only"))?;
    let webp_ok = *ty != "image/webp" || body.get(8..12) == Some(b"WEBP".as_slice());
    if !body.starts_with(magic) || !webp_ok {
        return Err(ApiError::invalid(
            "content_type",
            format!("the file is not {ty}"),
        ));
    }
    Ok((ty, ext))
}

/// A file name fit to keep: no path, no control characters, at most 200 chars.
fn clean_name(name: Option<&str>, ext: &str) -> String {
    let base = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    if cleaned.trim().is_empty() {
        format!("file.{ext}")
    } else {
        cleaned
    }
}

pub(crate) async fn upload(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
    QueryParams(query): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    visible_ticket(&state, &who, id).await?;
    if body.is_empty() {
        return Err(ApiError::invalid("file", "empty"));
    }
    let declared = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (content_type, ext) = check_type(declared, &body)?;
    let file_name = clean_name(query.name.as_deref(), ext);
    let stored = format!("{id}/{:016x}.{ext}", rand::random::<u64>());
    let path = state.attachments_dir.join(&stored);
    let io = |e: std::io::Error| {
        tracing::error!(error = %e, file = %path.display(), "cannot write an attachment");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    tokio::fs::write(&path, &body).await.map_err(io)?;
    let new = NewAttachment {
        ticket_id: TicketId(id),
        file_name: &file_name,
        content_type,
        bytes: i64::try_from(body.len()).unwrap_or(i64::MAX),
        path: &stored,
        uploaded_by: &who.extension,
    };
    match state.store.add_attachment(&new, Utc::now()).await {
        Ok(a) => Ok((StatusCode::CREATED, Json(a))),
        Err(e) => {
            // Nothing half-written: the file goes with the refused row.
            let _ = tokio::fs::remove_file(&path).await;
            Err(ApiError::input(e))
        }
    }
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Attachment>>, ApiError> {
    visible_ticket(&state, &who, id).await?;
    Ok(Json(state.store.attachments(TicketId(id)).await?))
}

pub(crate) async fn download(
    State(state): State<ApiState>,
    who: Principal,
    Path((id, file)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    visible_ticket(&state, &who, id).await?;
    let a = state
        .store
        .attachment(file)
        .await?
        .filter(|a| a.ticket_id == TicketId(id))
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    if a.path.contains("..") || a.path.starts_with('/') {
        return Err(ApiError::not_found("attachment"));
    }
    let bytes = tokio::fs::read(state.attachments_dir.join(&a.path))
        .await
        .map_err(|_| ApiError::not_found("attachment file"))?;
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&a.content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_against_the_bytes() {
        assert!(check_type("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]).is_ok());
        assert!(check_type("image/png", &[0xFF, 0xD8, 0xFF]).is_err());
        assert!(check_type("image/webp", b"RIFF\0\0\0\0WEBPVP8 ").is_ok());
        assert!(check_type("image/webp", b"RIFF\0\0\0\0WAVEfmt ").is_err());
        assert!(check_type("text/html", b"<html>").is_err());
        assert_eq!(
            clean_name(Some("../../etc/фото 1.jpg"), "jpg"),
            "фото 1.jpg"
        );
        assert_eq!(clean_name(Some(""), "png"), "file.png");
    }
}
