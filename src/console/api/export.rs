//! `/export/*`: the ticket journal and the call journal of a period, as CSV and
//! XLSX, and the ticket journal as a PDF report. Rows are read in keyset batches
//! ([`crate::store::export`]); CSV and PDF are streamed to the client batch by
//! batch (the PDF's pages as they fill), the XLSX file is built as the batches
//! come and sent when finished. Every
//! exported row is a read of personal data and is written to the access log.
//!
//! ```text
//! GET /export/tickets.csv | tickets.xlsx | tickets.pdf   ?from&to&tenant
//! GET /export/calls.csv | calls.xlsx                     ?from&to&tenant
//! ```

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};

use super::ApiState;
use super::auth::Principal;
use super::error::ApiError;
use super::extract::QueryParams;
use super::journal::log_reads;
use crate::console::report::TicketReport;
use crate::store::CallRecord;
use crate::store::export::{ExportQuery, JournalTicket};

/// Rows read per batch.
const BATCH: i64 = 2000;
/// Longest period exported at once.
const MAX_DAYS: i64 = 400;

const TICKET_HEADER: [&str; 16] = [
    "number",
    "tenant",
    "category",
    "status",
    "address",
    "apartment",
    "reason",
    "executor",
    "responsible",
    "registered_at",
    "deadline_at",
    "accepted_at",
    "done_at",
    "closed_at",
    "source",
    "description",
];
const CALL_HEADER: [&str; 14] = [
    "id",
    "direction",
    "from",
    "to",
    "tenant",
    "offered_at",
    "answered_at",
    "ended_at",
    "wait_s",
    "talk_s",
    "disposition",
    "operator",
    "ticket_id",
    "recording_id",
];

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn ticket_cells(t: &JournalTicket) -> [String; 16] {
    let k = &t.ticket;
    [
        k.number.clone(),
        k.tenant.clone(),
        k.category.as_str().to_owned(),
        k.status.as_str().to_owned(),
        k.address.clone(),
        k.apartment.clone().unwrap_or_default(),
        k.reason.clone(),
        k.executor_name.clone().unwrap_or_default(),
        k.responsible_name.clone().unwrap_or_default(),
        time(Some(k.created_at)),
        time(Some(k.deadline_at)),
        time(t.accepted_at),
        time(t.done_at),
        time(k.closed_at),
        k.source.as_str().to_owned(),
        k.description.clone(),
    ]
}

fn call_cells(c: &CallRecord) -> [String; 14] {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        c.id.clone(),
        c.direction.as_str().to_owned(),
        c.from_number.clone(),
        c.to_number.clone(),
        c.tenant.clone().unwrap_or_default(),
        time(Some(c.offered_at)),
        time(c.answered_at),
        time(c.ended_at),
        opt(c.wait_seconds),
        opt(c.talk_seconds),
        c.disposition
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        c.operator_extension.clone().unwrap_or_default(),
        opt(c.ticket_id.map(|t| t.0)),
        opt(c.recording_id.map(|r| r.0)),
    ]
}

/// Reads every batch of the period, handing each to `each`.
async fn each_ticket_batch(
    state: &ApiState,
    who: &Principal,
    q: &ExportQuery,
    mut each: impl FnMut(&[JournalTicket]) -> Result<(), ApiError>,
) -> Result<u64, ApiError> {
    let scope = who.scope();
    let mut after = None;
    let mut rows = 0;
    loop {
        let batch = state.store.journal_tickets(&scope, q, after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.ticket.created_at, last.ticket.id.0));
        log_reads(
            state,
            who,
            "GET /export/tickets",
            batch.iter().map(|t| {
                (
                    Some(t.ticket.tenant.as_str()),
                    "ticket",
                    t.ticket.id.to_string(),
                )
            }),
        )
        .await?;
        each(&batch)?;
        rows += batch.len() as u64;
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    Ok(rows)
}

async fn each_call_batch(
    state: &ApiState,
    who: &Principal,
    q: &ExportQuery,
    mut each: impl FnMut(&[CallRecord]) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let scope = who.scope();
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let batch = state.store.journal_calls(&scope, q, after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.offered_at, last.id.clone()));
        log_reads(
            state,
            who,
            "GET /export/calls",
            batch
                .iter()
                .map(|c| (c.tenant.as_deref(), "call", c.id.clone())),
        )
        .await?;
        each(&batch)?;
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    Ok(())
}

fn csv_line<const N: usize>(cells: &[String; N]) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells).map_err(internal)?;
    w.into_inner().map_err(|e| internal(e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "export failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn attachment(body: Body, content_type: &'static str, name: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(CONTENT_DISPOSITION, v);
    }
    response
}

/// The CSV of `journal`, streamed: a task reads the batches and sends each as it
/// is ready; a client that goes away stops it.
fn stream_csv(state: ApiState, who: Principal, q: ExportQuery, journal: &'static str) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        let send = |bytes: Vec<u8>| {
            let tx = tx.clone();
            async move { tx.send(Ok(bytes)).await.is_ok() }
        };
        let header: Vec<String> = match journal {
            "tickets" => TICKET_HEADER.iter().map(|s| (*s).to_owned()).collect(),
            _ => CALL_HEADER.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(&header);
        // A byte-order mark first, so spreadsheet programs read the Cyrillic right.
        let mut first = "\u{feff}".as_bytes().to_vec();
        first.extend(w.into_inner().unwrap_or_default());
        if !send(first).await {
            return;
        }
        let scope = who.scope();
        let result: Result<(), ApiError> = async {
            if journal == "tickets" {
                let mut after = None;
                loop {
                    let batch = state
                        .store
                        .journal_tickets(&scope, &q, after, BATCH)
                        .await?;
                    let Some(last) = batch.last() else { break };
                    after = Some((last.ticket.created_at, last.ticket.id.0));
                    log_reads(
                        &state,
                        &who,
                        "GET /export/tickets",
                        batch.iter().map(|t| {
                            (
                                Some(t.ticket.tenant.as_str()),
                                "ticket",
                                t.ticket.id.to_string(),
                            )
                        }),
                    )
                    .await?;
                    let mut chunk = Vec::new();
                    for t in &batch {
                        chunk.extend(csv_line(&ticket_cells(t))?);
                    }
                    if !send(chunk).await || (batch.len() as i64) < BATCH {
                        break;
                    }
                }
            } else {
                let mut after: Option<(DateTime<Utc>, String)> = None;
                loop {
                    let batch = state.store.journal_calls(&scope, &q, after, BATCH).await?;
                    let Some(last) = batch.last() else { break };
                    after = Some((last.offered_at, last.id.clone()));
                    log_reads(
                        &state,
                        &who,
                        "GET /export/calls",
                        batch
                            .iter()
                            .map(|c| (c.tenant.as_deref(), "call", c.id.clone())),
                    )
                    .await?;
                    let mut chunk = Vec::new();
                    for c in &batch {
                        chunk.extend(csv_line(&call_cells(c))?);
                    }
                    if !send(chunk).await || (batch.len() as i64) < BATCH {
                        break;
                    }
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // The client sees a cut stream rather than a file that looks whole.
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The PDF report, streamed: a task reads the batches, adds their lines and sends
/// the pages finished so far after each batch; a client that goes away stops it.
fn stream_pdf(state: ApiState, who: Principal, q: ExportQuery, mut report: TicketReport) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        let result: Result<bool, ApiError> = async {
            let scope = who.scope();
            let mut after = None;
            loop {
                let batch = state
                    .store
                    .journal_tickets(&scope, &q, after, BATCH)
                    .await?;
                let Some(last) = batch.last() else { break };
                after = Some((last.ticket.created_at, last.ticket.id.0));
                log_reads(
                    &state,
                    &who,
                    "GET /export/tickets",
                    batch.iter().map(|t| {
                        (
                            Some(t.ticket.tenant.as_str()),
                            "ticket",
                            t.ticket.id.to_string(),
                        )
                    }),
                )
                .await?;
                for t in &batch {
                    report.add(t);
                }
                let done = report.take_output();
                if !done.is_empty() && tx.send(Ok(done)).await.is_err() {
                    return Ok(false);
                }
                if (batch.len() as i64) < BATCH {
                    break;
                }
            }
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => {
                let rows = report.rows();
                let _ = tx
                    .send(Ok(report.finish(&format!("Всего заявок: {rows}"))))
                    .await;
            }
            Ok(false) => {}
            Err(_) => {
                // The client sees a cut stream rather than a file that looks whole.
                let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn check_period(q: &ExportQuery) -> Result<(), ApiError> {
    if q.to <= q.from || q.to - q.from > Duration::days(MAX_DAYS) {
        return Err(ApiError::invalid(
            "to",
            format!("after `from`, at most {MAX_DAYS} days"),
        ));
    }
    Ok(())
}

/// The company named on the report: the tenant asked for, the reader's only one,
/// or "all companies".
async fn company(
    state: &ApiState,
    who: &Principal,
    q: &ExportQuery,
) -> Result<(String, chrono_tz::Tz), ApiError> {
    let code = q
        .tenant
        .clone()
        .or_else(|| (who.tenants.len() == 1).then(|| who.tenants[0].clone()));
    if let Some(code) = code {
        if let Some(t) = state.store.tenant(&code).await? {
            return Ok((t.name, t.city.time_zone));
        }
    }
    let tenants = state.store.tenants(&who.scope()).await?;
    let zone = tenants
        .first()
        .map_or(chrono_tz::Europe::Moscow, |t| t.city.time_zone);
    let names: Vec<String> = tenants.into_iter().map(|t| t.name).collect();
    Ok((
        if names.len() <= 3 {
            names.join(", ")
        } else {
            format!("все УК ({})", names.len())
        },
        zone,
    ))
}

pub(crate) async fn export(
    State(state): State<ApiState>,
    who: Principal,
    Path(file): Path<String>,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    who.require(q.tenant.as_deref())?;
    check_period(&q)?;
    let name = file.clone();
    match file.as_str() {
        "tickets.csv" => Ok(attachment(
            stream_csv(state, who, q, "tickets"),
            "text/csv; charset=utf-8",
            &name,
        )),
        "calls.csv" => Ok(attachment(
            stream_csv(state, who, q, "calls"),
            "text/csv; charset=utf-8",
            &name,
        )),
        "tickets.xlsx" | "calls.xlsx" => {
            let bytes = xlsx(&state, &who, &q, file.starts_with("tickets")).await?;
            Ok(attachment(
                Body::from(bytes),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &name,
            ))
        }
        "tickets.pdf" => {
            let (company, zone) = company(&state, &who, &q).await?;
            let report = TicketReport::new(&company, q.from, q.to, zone).map_err(internal)?;
            Ok(attachment(
                stream_pdf(state, who, q, report),
                "application/pdf",
                &name,
            ))
        }
        _ => Err(ApiError::not_found("export")),
    }
}

async fn xlsx(
    state: &ApiState,
    who: &Principal,
    q: &ExportQuery,
    tickets: bool,
) -> Result<Vec<u8>, ApiError> {
    use rust_xlsxwriter::Workbook;
    let mut book = Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory();
    sheet
        .set_name(if tickets {
            "Заявки"
        } else {
            "Звонки"
        })
        .map_err(internal)?;
    let header: &[&str] = if tickets {
        &TICKET_HEADER
    } else {
        &CALL_HEADER
    };
    for (col, h) in header.iter().enumerate() {
        sheet.write_string(0, col as u16, *h).map_err(internal)?;
    }
    let mut row: u32 = 1;
    let mut write = |cells: &[String]| -> Result<(), ApiError> {
        for (col, cell) in cells.iter().enumerate() {
            sheet
                .write_string(row, col as u16, cell)
                .map_err(internal)?;
        }
        row += 1;
        Ok(())
    };
    if tickets {
        each_ticket_batch(state, who, q, |batch| {
            batch.iter().try_for_each(|t| write(&ticket_cells(t)))
        })
        .await?;
    } else {
        each_call_batch(state, who, q, |batch| {
            batch.iter().try_for_each(|c| write(&call_cells(c)))
        })
        .await?;
    }
    book.save_to_buffer().map_err(internal)
}
