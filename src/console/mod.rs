//! The HTTP surface: health and metrics, the REST API, the websocket event stream and
//! the operators' console page.

pub mod api;
