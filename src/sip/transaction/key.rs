//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3).

use crate::sip::wire::{Method, Request, Response};

/// Identifies a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// A server transaction whose request carries an RFC 3261 branch: the branch,
    /// the sent-by and the method (an ACK matches its INVITE).
    Server {
        /// The top Via branch.
        branch: String,
        /// The top Via sent-by, `host:port`.
        sent_by: String,
        /// The method that created the transaction.
        method: Method,
    },
    /// A server transaction from an RFC 2543 element (no magic cookie): matched on
    /// Request-URI, From tag, Call-ID, CSeq number, top Via and method.
    Rfc2543 {
        /// Request-URI text.
        uri: String,
        /// From tag, if any.
        from_tag: Option<String>,
        /// Call-ID.
        call_id: String,
        /// CSeq number.
        cseq: u32,
        /// The whole top Via.
        via: String,
        /// The method that created the transaction.
        method: Method,
    },
    /// A client transaction: the branch we generated and the CSeq method (a CANCEL
    /// shares its INVITE's branch).
    Client {
        /// Our branch.
        branch: String,
        /// CSeq method.
        method: Method,
    },
}

fn creating_method(method: &Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

impl TransactionKey {
    /// The server transaction a request belongs to (an ACK maps to its INVITE's).
    pub fn server(request: &Request) -> Option<Self> {
        let via = request.headers.top_via()?;
        let method = creating_method(&request.method);
        if via.has_rfc3261_branch() {
            let sent_by = match via.port {
                Some(p) => format!("{}:{p}", via.host),
                None => via.host.to_string(),
            };
            return Some(Self::Server {
                branch: via.branch()?.to_owned(),
                sent_by,
                method,
            });
        }
        Some(Self::Rfc2543 {
            uri: request.uri.to_string(),
            from_tag: request.headers.from.tag().map(str::to_owned),
            call_id: request.headers.call_id.clone(),
            cseq: request.headers.cseq.seq,
            via: via.to_string(),
            method,
        })
    }

    /// The same key for another method: a CANCEL's key turned into the key of the
    /// INVITE it cancels.
    pub fn with_method(&self, method: Method) -> Self {
        let mut key = self.clone();
        match &mut key {
            Self::Server { method: m, .. }
            | Self::Rfc2543 { method: m, .. }
            | Self::Client { method: m, .. } => *m = method,
        }
        key
    }

    /// The client transaction key for a branch we generated.
    pub fn client(branch: &str, method: Method) -> Self {
        Self::Client {
            branch: branch.to_owned(),
            method,
        }
    }

    /// The client transaction a response belongs to.
    pub fn for_response(response: &Response) -> Option<Self> {
        let branch = response.headers.top_via()?.branch()?;
        Some(Self::client(branch, response.headers.cseq.method.clone()))
    }

    /// The method that created the transaction.
    pub fn method(&self) -> &Method {
        match self {
            Self::Server { method, .. }
            | Self::Rfc2543 { method, .. }
            | Self::Client { method, .. } => method,
        }
    }
}
