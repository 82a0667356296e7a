//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request is checked by the host against the agent's allowlist before
//! any connection is made; a refused request fails with
//! [`HttpError::Denied`].
//!
//! ```no_run
//! use orchestr8_agent_sdk::http;
//!
//! # fn demo() -> Result<(), http::HttpError> {
//! let response = http::get("https://api.example.com/v1/items?limit=5")
//!     .header("accept", "application/json")
//!     .send()?;
//! let items: serde_json::Value = response.json()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::AgentError;

/// Largest response body read by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Largest chunk WASI output streams accept in one blocking write.
const WRITE_CHUNK: usize = 4096;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the request: the host is not on the allowlist.
    Denied {
        /// The URL asked for.
        url: String,
    },
    /// The URL cannot be parsed.
    InvalidUrl(String),
    /// Connecting, sending or receiving failed.
    Transport(String),
    /// The response body is larger than the configured maximum.
    BodyTooLarge {
        /// The maximum.
        limit: usize,
    },
    /// The response body is not the expected JSON.
    Decode(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied { url } => {
                write!(
                    f,
                    "request to {url} was denied: the host is not on the agent's allowlist"
                )
            }
            HttpError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpError::Transport(why) => write!(f, "HTTP request failed: {why}"),
            HttpError::BodyTooLarge { limit } => {
                write!(f, "response body exceeds {limit} bytes")
            }
            HttpError::Decode(why) => write!(f, "response is not the expected JSON: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Transport failures may pass; denials and bad URLs will not.
impl From<HttpError> for AgentError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Transport(_) => AgentError::retryable(e.to_string()),
            _ => AgentError::fatal(e.to_string()),
        }
    }
}

/// Everything but RFC 3986's unreserved characters is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
}

/// Starts a GET request.
pub fn get(url: impl Into<String>) -> Request {
    Request::new(Method::Get, url)
}

/// Starts a POST request.
pub fn post(url: impl Into<String>) -> Request {
    Request::new(Method::Post, url)
}

impl Request {
    fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Appends a query parameter, percent-encoding name and value (so
    /// untrusted text cannot add parameters of its own).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        self.url = format!(
            "{}{separator}{}={}",
            self.url,
            utf8_percent_encode(name, QUERY_VALUE),
            utf8_percent_encode(value, QUERY_VALUE)
        );
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, body: &impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.header("content-type", "application/json").body(bytes)
    }

    /// Sets a raw body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = bytes.into();
        self
    }

    /// Bounds connecting and waiting for the first byte.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Changes the largest response body accepted.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url)?;
        let fields = Fields::from_list(&self.headers)
            .map_err(|e| HttpError::InvalidUrl(format!("bad header: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let invalid = |what: &str| HttpError::InvalidUrl(format!("{what} rejected: {}", self.url));
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&url.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&url.path_and_query))
            .map_err(|()| invalid("path"))?;
        let options = self.timeout.map(|t| {
            let options = RequestOptions::new();
            let nanos = t.as_nanos() as u64;
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            options
        });
        let body = request
            .body()
            .map_err(|()| HttpError::Transport("request body unavailable".into()))?;
        let pending = outgoing_handler::handle(request, options).map_err(|e| self.error(e))?;
        {
            let stream = body
                .write()
                .map_err(|()| HttpError::Transport("request body stream unavailable".into()))?;
            for chunk in self.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::Transport(format!("writing the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| self.error(e))?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(self.error(code)),
            Some(Err(())) | None => {
                return Err(HttpError::Transport("response was already taken".into()));
            }
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Transport("response body unavailable".into()))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| HttpError::Transport("response body stream unavailable".into()))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        if bytes.len() + chunk.len() > self.max_response_bytes {
                            return Err(HttpError::BodyTooLarge {
                                limit: self.max_response_bytes,
                            });
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(e) => {
                        return Err(HttpError::Transport(format!("reading the body: {e:?}")));
                    }
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }

    fn error(&self, code: ErrorCode) -> HttpError {
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied {
                url: self.url.clone(),
            },
            other => HttpError::Transport(describe(&other)),
        }
    }
}

/// A `wasi:http` error code in words, not as Rust debug output.
fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::DnsTimeout => "looking up the host name timed out".into(),
        ErrorCode::DnsError(_) => "the host name could not be looked up".into(),
        ErrorCode::DestinationNotFound => "the host was not found".into(),
        ErrorCode::DestinationUnavailable => "the host is unavailable".into(),
        ErrorCode::DestinationIpUnroutable => "the host's address cannot be reached".into(),
        ErrorCode::ConnectionRefused => "the connection was refused".into(),
        ErrorCode::ConnectionTerminated => "the connection was closed".into(),
        ErrorCode::ConnectionTimeout => "connecting timed out".into(),
        ErrorCode::ConnectionReadTimeout => "the server did not answer in time".into(),
        ErrorCode::ConnectionWriteTimeout => "sending the request timed out".into(),
        ErrorCode::ConnectionLimitReached => {
            "too many connections open at once (the host's share per call)".into()
        }
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            "the TLS handshake failed".into()
        }
        ErrorCode::TlsCertificateError => "the server's TLS certificate is not valid".into(),
        ErrorCode::HttpResponseTimeout => "the response did not arrive in time".into(),
        ErrorCode::HttpProtocolError => "the server broke the HTTP protocol".into(),
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode(e.to_string()))
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when its status is 2xx, else an error the
    /// resilience chain understands: 408, 429 and 5xx are retryable (with the
    /// server's `Retry-After` seconds as the hint), other statuses fatal.
    /// Map the statuses your API gives meaning to (such as 404) first.
    pub fn error_for_status(self) -> Result<Response, AgentError> {
        if self.is_success() {
            return Ok(self);
        }
        let text = self.text();
        let excerpt: String = text.chars().take(200).collect();
        let message = format!("the server answered {}: {excerpt}", self.status);
        if self.status == 408 || self.status == 429 || self.status >= 500 {
            let mut error = AgentError::retryable(message);
            if let Some(secs) = self
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                error = error.retry_after(Duration::from_secs(secs));
            }
            Err(error)
        } else {
            Err(AgentError::fatal(message))
        }
    }
}

/// The parts of an absolute `http(s)` URL the request needs.
#[derive(Debug)]
struct Url {
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = |why: &str| HttpError::InvalidUrl(format!("{why}: {url}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("only http and https are supported")),
        };
        let rest = rest.split('#').next().unwrap_or(rest);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(bad("bad host"));
        }
        let path_and_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            scheme,
            authority: authority.to_string(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let u = Url::parse("https://api.example.com:8443/v1/x?q=1#frag").unwrap();
        assert!(matches!(u.scheme, Scheme::Https));
        assert_eq!(u.authority, "api.example.com:8443");
        assert_eq!(u.path_and_query, "/v1/x?q=1");
        assert_eq!(Url::parse("http://h").unwrap().path_and_query, "/");
        assert_eq!(Url::parse("http://h?x=1").unwrap().path_and_query, "/?x=1");
    }

    #[test]
    fn query_parameters_are_encoded() {
        let r = get("https://h/v2/search?x=1")
            .query("libraryName", "next.js & co")
            .query("q", "a=b?c/d");
        assert_eq!(
            r.url,
            "https://h/v2/search?x=1&libraryName=next.js%20%26%20co&q=a%3Db%3Fc%2Fd"
        );
        assert_eq!(get("http://h/p").query("k", "é").url, "http://h/p?k=%C3%A9");
    }

    #[test]
    fn bad_urls_are_rejected() {
        for url in ["ftp://h/", "no-scheme", "http:///path", "http://user@h/"] {
            assert!(Url::parse(url).is_err(), "{url}");
        }
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: b"nope".to_vec(),
        }
    }

    #[test]
    fn statuses_map_to_retryable_or_fatal_errors() {
        assert!(response(204, &[]).error_for_status().is_ok());
        let e = response(429, &[("retry-after", "7")])
            .error_for_status()
            .unwrap_err();
        assert!(e.is_retryable());
        assert!(e.message().contains("429: nope"));
        assert!(
            response(503, &[])
                .error_for_status()
                .unwrap_err()
                .is_retryable()
        );
        let e = response(401, &[]).error_for_status().unwrap_err();
        assert!(!e.is_retryable() && !e.is_invalid_input());
    }
}
