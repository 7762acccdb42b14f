//! The crate-wide error: one enum wrapping each layer's own error type, so callers at
//! the edge (the binary, the HTTP handlers) can match on where a failure came from.

/// Anything that can stop the engine from starting or a command from completing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file has faults (each listed as `file:line: message`).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The ticket store failed (connecting, migrating, a query).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The media layer failed (ports, prompts, recording).
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
    /// An operating-system level failure (binding a socket, reading a file).
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what the engine was doing when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
