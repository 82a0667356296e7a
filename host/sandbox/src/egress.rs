//! Outbound HTTP for agents: the allowlist, the address check and the sender.
//!
//! Shaped after Spin's outbound-http factor, in layers:
//!
//! 1. the request's scheme, host and port must match one of the agent's
//!    [`HostPattern`]s, or it is refused before anything else happens;
//! 2. the host name is resolved here, and addresses in internal networks
//!    (loopback, private, link-local and cloud metadata, …) are removed unless
//!    a grant names that very address (`127.0.0.1:8080` in a test), so an
//!    allowed *name* cannot become a path into the inside network;
//! 3. the connection goes to an address from step 2 (never re-resolved, so a
//!    DNS answer cannot change between check and use), while a process-wide
//!    semaphore caps concurrent outbound connections;
//! 4. each invocation and each agent may hold only a share of those
//!    connections: a request past its share is refused at once (the hog is
//!    refused, not its neighbours), while one within its share waits for a
//!    process-wide slot.
//!
//! Refusals are answered to the agent as `HTTP-request-denied` and recorded
//! in the invocation's [`DenialLog`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::denial::{Capability, DenialLog};
use super::fixtures::{FixtureRequest, FixtureResponse, HttpFixture, HttpFixtures};
use super::logs::{AgentObserver, AgentRecord, RecordedExchange};

/// How long connecting may take when the agent sets no connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One entry of an agent's outbound allowlist: `[scheme://]host[:port]`.
///
/// `host` is a DNS name, `*.suffix` (any name below `suffix`, not `suffix`
/// itself), an IPv4 address or a bracketed IPv6 address. Without a scheme both
/// `http` and `https` match; without a port only the scheme's default port
/// (80 or 443) matches.
#[derive(Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<Scheme>,
    host: HostMatch,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    Suffix(String),
    Address(IpAddr),
}

/// A host pattern that cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid allowed host `{pattern}`: {reason}")]
pub struct HostPatternError {
    pattern: String,
    reason: &'static str,
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| HostPatternError {
            pattern: text.to_string(),
            reason,
        };
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => (Some(Scheme::Http), rest),
            Some(("https", rest)) => (Some(Scheme::Https), rest),
            Some(_) => return Err(err("only http:// and https:// are supported")),
            None => (None, text),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(err("give a host and optional port, without a path"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| err("bad port"))?;
        if host.is_empty() {
            return Err(err("the host is empty"));
        }
        let host = host.to_ascii_lowercase();
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(err("a wildcard must look like `*.example.com`"));
            }
            HostMatch::Suffix(suffix.to_string())
        } else if host.contains('*') {
            return Err(err("a wildcard must look like `*.example.com`"));
        } else if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            HostMatch::Address(ip)
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }
}

/// Splits `host[:port]`, where an IPv6 host is bracketed. `None` for a bad port.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        match &s[end + 1..] {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?.parse().ok()?))),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => Some((host, Some(port.parse().ok()?))),
            None => Some((s, None)),
        }
    }
}

impl HostPattern {
    fn matches(&self, target: &Target) -> bool {
        if self.scheme.is_some_and(|s| s != target.scheme) {
            return false;
        }
        let port = self.port.unwrap_or(target.scheme.default_port());
        if port != target.port {
            return false;
        }
        match &self.host {
            HostMatch::Exact(h) => *h == target.host,
            HostMatch::Suffix(suffix) => target
                .host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            HostMatch::Address(ip) => target.host.parse::<IpAddr>().is_ok_and(|t| t == *ip),
        }
    }

    /// What the grant lets through, in words: `http and https on their
    /// default ports`, `https on port 443`, `port 8080`.
    fn covers(&self) -> String {
        match (self.scheme, self.port) {
            (None, None) => "http and https on their default ports (80, 443)".into(),
            (Some(s), None) => format!("{} on port {}", s.name(), s.default_port()),
            (None, Some(port)) => format!("port {port}"),
            (Some(s), Some(port)) => format!("{} on port {port}", s.name()),
        }
    }

    /// Whether this grant names `addr` itself, which lets an agent reach an
    /// internal address that was granted on purpose.
    fn names_address(&self, addr: SocketAddr, scheme: Scheme) -> bool {
        matches!(self.host, HostMatch::Address(ip) if ip == addr.ip())
            && self.port.unwrap_or(scheme.default_port()) == addr.port()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({})", self.text)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a request wants to go.
#[derive(Debug, Clone)]
struct Target {
    scheme: Scheme,
    host: String,
    port: u16,
    /// `scheme://host:port/path`, without the query, which may hold secrets.
    display: String,
}

impl Target {
    /// The narrowest grant that lets this request through: the host, with
    /// its port when it is not the scheme's default.
    fn grant(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn from_uri(uri: &http::Uri) -> Option<Target> {
        let scheme = match uri.scheme_str()? {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        let display = format!(
            "{}://{}{}",
            uri.scheme_str()?,
            uri.authority()?.as_str(),
            uri.path()
        );
        Some(Target {
            scheme,
            host,
            port,
            display,
        })
    }
}

/// Why `target` is refused, and the grant that would let it through: when a
/// grant names the same host for another port or scheme, it says so (a
/// grant of `127.0.0.1` covers only ports 80 and 443).
fn refusal(allowed: &[HostPattern], target: &Target) -> String {
    let grant = target.grant();
    let near = allowed.iter().find(|p| match &p.host {
        HostMatch::Exact(h) => *h == target.host,
        HostMatch::Address(ip) => target.host.parse::<IpAddr>().is_ok_and(|t| t == *ip),
        HostMatch::Suffix(_) => false,
    });
    match near {
        Some(p) => format!(
            "the grant `{p}` covers {}, not {}:{}: grant `{grant}` in allowed_hosts",
            p.covers(),
            target.scheme.name(),
            target.port
        ),
        None => format!("host is not on the agent's allowlist: grant `{grant}` in allowed_hosts"),
    }
}

/// Whether an address belongs to a network an agent must not reach by name:
/// loopback, private, link-local (cloud metadata), carrier-grade NAT,
/// unspecified, multicast, broadcast and documentation ranges.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || is_nat64_of_internal(v6)
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
}

fn is_nat64_of_internal(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if s[..6] != [0x64, 0xff9b, 0, 0, 0, 0] {
        return false;
    }
    let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    is_internal_v4(v4)
}

/// Process-wide outbound HTTP state: the TLS configuration, the cap on
/// concurrent connections and each agent's share of it.
pub(crate) struct EgressShared {
    tls: Arc<rustls::ClientConfig>,
    connections: Arc<Semaphore>,
    per_call: usize,
    per_agent: usize,
    agents: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// How many connections one invocation, and one agent, may hold at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionShares {
    pub(crate) total: usize,
    pub(crate) per_call: usize,
    pub(crate) per_agent: usize,
}

impl EgressShared {
    pub(crate) fn new(shares: ConnectionShares) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(EgressShared {
            tls: Arc::new(tls),
            connections: Arc::new(Semaphore::new(shares.total)),
            per_call: shares.per_call,
            per_agent: shares.per_agent,
            agents: Mutex::default(),
        })
    }

    /// A fresh share for one invocation of `agent`, beside the share all
    /// invocations of that agent have together.
    pub(crate) fn share_for(&self, agent: &str) -> Share {
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        forget_idle(&mut agents);
        let per_agent = agents
            .entry(agent.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_agent)))
            .clone();
        Share {
            call: Arc::new(Semaphore::new(self.per_call)),
            agent: per_agent,
            size: self.per_call,
        }
    }
}

/// Most per-key semaphores kept before idle ones are forgotten: a server
/// that loads agent after agent must not keep one for each forever.
pub(crate) const MAX_IDLE_SHARES: usize = 1024;

/// Drops the semaphores nobody holds (no invocation has a clone) once the
/// map has grown past [`MAX_IDLE_SHARES`]; a later invocation of that key
/// starts a fresh, full one, which is what an idle one is.
pub(crate) fn forget_idle<K>(map: &mut HashMap<K, Arc<Semaphore>>) {
    if map.len() > MAX_IDLE_SHARES {
        map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
    }
}

/// The connections one invocation may still open.
#[derive(Clone)]
pub(crate) struct Share {
    call: Arc<Semaphore>,
    agent: Arc<Semaphore>,
    size: usize,
}

impl Share {
    /// Whether the invocation has a connection open right now.
    pub(crate) fn in_use(&self) -> bool {
        self.call.available_permits() < self.size
    }
}

/// What an open connection holds, given back when it closes.
struct ConnectionPermits {
    _call: OwnedSemaphorePermit,
    _agent: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

/// The `wasi:http` hooks of one invocation.
pub(crate) struct EgressHooks {
    pub(crate) allowed: Arc<[HostPattern]>,
    pub(crate) shared: Arc<EgressShared>,
    pub(crate) share: Share,
    pub(crate) denials: DenialLog,
    pub(crate) fixtures: Option<HttpFixtures>,
    /// Told of each exchange with the network, for replay (with the
    /// attempt number).
    pub(crate) recorder: Option<(AgentObserver, u32)>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let Some(target) = Target::from_uri(request.uri()) else {
            return Box::new(std::future::ready(Err(HttpError::HttpRequestUriInvalid)));
        };
        if !self.allowed.iter().any(|p| p.matches(&target)) {
            self.denials.record_grantable(
                Capability::Http,
                &format!("{} {}", request.method(), target.display),
                refusal(&self.allowed, &target),
                &target.grant(),
            );
            return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
        }
        if let Some(fixtures) = self.fixtures.clone() {
            return Box::new(async move {
                let response = fixtures.answer(request).await?;
                let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                    Box::new(std::future::ready(Ok(())));
                Ok((response, done))
            });
        }
        let allowed = self.allowed.clone();
        let shared = self.shared.clone();
        let share = self.share.clone();
        let denials = self.denials.clone();
        let recorder = self.recorder.clone();
        let asked = (request.method().to_string(), request.uri().to_string());
        Box::new(async move {
            let (response, worker) = send(
                request, options, target, &allowed, &shared, &share, &denials,
            )
            .await?;
            let response = match recorder {
                Some((observer, attempt)) => record(response, asked, observer, attempt),
                None => response,
            };
            Ok((response, worker))
        })
    }
}

/// The largest response body kept for replay; past it the exchange is
/// recorded without its body (the journal keeps entries up to 64 KiB).
pub const MAX_RECORDED_BODY: usize = 48 * 1024;

/// Headers about the connection, not the answer: not recorded.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

/// `response`, whose body is copied as the agent reads it and reported to
/// `observer` as an exchange when it ends (or is dropped).
fn record(
    response: http::Response<WasiBody>,
    (method, url): (String, String),
    observer: AgentObserver,
    attempt: u32,
) -> http::Response<WasiBody> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let report = move |body: Vec<u8>, complete: bool| {
        let text = String::from_utf8(body).ok();
        let complete = complete && text.is_some();
        let exchange = HttpFixture {
            request: FixtureRequest {
                method,
                url,
                body: None,
                body_contains: Vec::new(),
            },
            response: FixtureResponse {
                status,
                headers,
                body: text.map(serde_json::Value::String),
            },
        };
        observer.tell(
            attempt,
            AgentRecord::Exchange(RecordedExchange { exchange, complete }),
        );
    };
    response.map(|body| {
        RecordedBody {
            inner: body,
            copy: Vec::new(),
            overflow: false,
            report: Some(Box::new(report)),
        }
        .boxed_unsync()
    })
}

/// A response body that keeps a copy of what passes through it, up to
/// [`MAX_RECORDED_BODY`], and reports it once: at its end, or when it is
/// dropped before (then as incomplete).
struct RecordedBody {
    inner: WasiBody,
    copy: Vec<u8>,
    overflow: bool,
    report: Option<Report>,
}

/// Reports a recorded body: its bytes, and whether they are all there.
type Report = Box<dyn FnOnce(Vec<u8>, bool) + Send>;

impl RecordedBody {
    fn finish(&mut self, complete: bool) {
        if let Some(report) = self.report.take() {
            let body = if self.overflow {
                Vec::new()
            } else {
                std::mem::take(&mut self.copy)
            };
            report(body, complete && !self.overflow);
        }
    }
}

impl hyper::body::Body for RecordedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() <= MAX_RECORDED_BODY {
                        this.copy.extend_from_slice(data);
                    } else {
                        this.overflow = true;
                        this.copy = Vec::new();
                    }
                }
            }
            std::task::Poll::Ready(None) => this.finish(true),
            std::task::Poll::Ready(Some(Err(_))) => this.finish(false),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}

async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
    allowed: &[HostPattern],
    shared: &EgressShared,
    share: &Share,
    denials: &DenialLog,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let resolved = resolve(&target, connect_timeout).await?;
    let usable: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| {
            !is_internal(a.ip()) || allowed.iter().any(|p| p.names_address(*a, target.scheme))
        })
        .collect();
    if usable.is_empty() {
        let list: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
        denials.record(
            Capability::Http,
            &format!("{} {}", request.method(), target.display),
            format!(
                "host resolves only to internal addresses ({}); grant the address itself to allow it",
                list.join(", ")
            ),
        );
        return Err(HttpError::HttpRequestDenied);
    }

    let asked = format!("{} {}", request.method(), target.display);
    let over_share = |whose: &str, size: usize| {
        denials.record(
            Capability::Http,
            &asked,
            format!(
                "{whose} already holds {size} open connections, its share; wait for one to finish"
            ),
        );
        HttpError::ConnectionLimitReached
    };
    let call = share
        .call
        .clone()
        .try_acquire_owned()
        .map_err(|_| over_share("this call", shared.per_call))?;
    let agent = share
        .agent
        .clone()
        .try_acquire_owned()
        .map_err(|_| over_share("this agent", shared.per_agent))?;
    let process = shared
        .connections
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| HttpError::ConnectionLimitReached)?;
    let permit = ConnectionPermits {
        _call: call,
        _agent: agent,
        _process: process,
    };
    let stream = connect(&usable, connect_timeout).await?;

    // The request line carries only the path; the authority is in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let io: Box<dyn IoStream> = match target.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?;
            let tls = tokio_rustls::TlsConnector::from(shared.tls.clone())
                .connect(name, stream)
                .await
                .map_err(HttpError::Tls)?;
            Box::new(tls)
        }
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // Drive the connection while waiting for the response. A server that
    // answers and closes at once finishes the connection first; the response
    // is still delivered, so wait for it then.
    let mut conn = Box::pin(conn);
    let exchange = async {
        let mut send = std::pin::pin!(sender.send_request(request));
        tokio::select! {
            biased;
            response = &mut send => (response, None),
            closed = &mut conn => (send.await, Some(closed)),
        }
    };
    let (response, closed) = tokio::time::timeout(first_byte_timeout, exchange)
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?;
    let (response, closed) = match (response, closed) {
        (Ok(response), closed) => (response, closed),
        // The connection's own error says more than "request cancelled".
        (Err(_), Some(Err(conn_error))) => return Err(HttpError::from(conn_error)),
        (Err(e), _) => return Err(HttpError::from(e)),
    };
    let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
    // The connection keeps its slot until the response body is done.
    let worker = async move {
        let _permit = permit;
        match closed {
            Some(result) => result.map_err(HttpError::from),
            None => conn.await.map_err(HttpError::from),
        }
    };
    Ok((response, Box::new(worker)))
}

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T> IoStream for T where T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static
{}

async fn resolve(target: &Target, timeout: Duration) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(HttpError::DnsTimeout),
        Ok(Err(e)) => Err(HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => Ok(addrs.collect()),
    }
}

async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn target(url: &str) -> Target {
        Target::from_uri(&url.parse().unwrap()).unwrap()
    }

    #[rstest]
    #[case("api.example.com", "https://api.example.com/v1", true)]
    #[case("api.example.com", "http://api.example.com/", true)]
    #[case("api.example.com", "https://api.example.com:8443/", false)]
    #[case("api.example.com:8443", "https://api.example.com:8443/", true)]
    #[case("https://api.example.com", "http://api.example.com/", false)]
    #[case("API.Example.com", "https://api.EXAMPLE.com/", true)]
    #[case("*.example.com", "https://a.example.com/", true)]
    #[case("*.example.com", "https://a.b.example.com/", true)]
    #[case("*.example.com", "https://example.com/", false)]
    #[case("*.example.com", "https://badexample.com/", false)]
    #[case("api.example.com", "https://api.example.com.evil.net/", false)]
    #[case("127.0.0.1:8080", "http://127.0.0.1:8080/x", true)]
    #[case("127.0.0.1:8080", "http://127.0.0.1:8081/x", false)]
    #[case("[::1]:8080", "http://[::1]:8080/", true)]
    fn patterns_match_scheme_host_and_port(
        #[case] pattern: &str,
        #[case] url: &str,
        #[case] expected: bool,
    ) {
        let p: HostPattern = pattern.parse().unwrap();
        assert_eq!(p.matches(&target(url)), expected, "{pattern} vs {url}");
    }

    #[rstest]
    #[case("ftp://example.com")]
    #[case("example.com/path")]
    #[case("example.com:http")]
    #[case("*")]
    #[case("a.*.example.com")]
    #[case("")]
    #[case("user@example.com")]
    fn malformed_patterns_are_rejected(#[case] pattern: &str) {
        assert!(pattern.parse::<HostPattern>().is_err(), "{pattern}");
    }

    #[rstest]
    #[case("127.0.0.1", true)]
    #[case("10.1.2.3", true)]
    #[case("172.16.0.1", true)]
    #[case("192.168.1.1", true)]
    #[case("169.254.169.254", true)]
    #[case("100.64.0.1", true)]
    #[case("0.0.0.0", true)]
    #[case("::1", true)]
    #[case("fd00:ec2::254", true)]
    #[case("fe80::1", true)]
    #[case("::ffff:127.0.0.1", true)]
    #[case("64:ff9b::a9fe:a9fe", true)]
    #[case("93.184.216.34", false)]
    #[case("2606:2800:220:1:248:1893:25c8:1946", false)]
    fn internal_networks_are_recognised(#[case] ip: &str, #[case] internal: bool) {
        assert_eq!(is_internal(ip.parse().unwrap()), internal, "{ip}");
    }

    #[test]
    fn only_an_address_grant_names_an_internal_address() {
        let by_name: HostPattern = "localhost:8080".parse().unwrap();
        let by_addr: HostPattern = "127.0.0.1:8080".parse().unwrap();
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(!by_name.names_address(addr, Scheme::Http));
        assert!(by_addr.names_address(addr, Scheme::Http));
        assert!(!by_addr.names_address("127.0.0.1:9090".parse().unwrap(), Scheme::Http));
    }

    #[test]
    fn target_display_drops_the_query() {
        let t = target("https://api.example.com/v1/search?key=secret");
        assert_eq!(t.display, "https://api.example.com/v1/search");
    }

    #[test]
    fn patterns_round_trip_through_serde() {
        let p: HostPattern = serde_json::from_str("\"https://*.example.com\"").unwrap();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            "\"https://*.example.com\""
        );
        assert!(serde_json::from_str::<HostPattern>("\"ftp://x\"").is_err());
    }

    #[test]
    fn idle_shares_are_forgotten_once_there_are_many_and_held_ones_kept() {
        let mut map: HashMap<usize, Arc<Semaphore>> = (0..=MAX_IDLE_SHARES)
            .map(|i| (i, Arc::new(Semaphore::new(1))))
            .collect();
        let held = map[&7].clone();
        forget_idle(&mut map);
        assert_eq!(map.len(), 1);
        assert!(Arc::ptr_eq(&map[&7], &held));
    }

    #[test]
    fn a_refusal_names_the_grant_that_would_let_it_through() {
        let patterns = |list: &[&str]| -> Vec<HostPattern> {
            list.iter().map(|p| p.parse().unwrap()).collect()
        };
        let none = refusal(&[], &target("http://127.0.0.1:8080/x"));
        assert!(
            none.contains("not on the agent's allowlist: grant `127.0.0.1:8080`"),
            "{none}"
        );
        let portless = refusal(
            &patterns(&["127.0.0.1"]),
            &target("http://127.0.0.1:8080/x"),
        );
        assert!(
            portless.contains("the grant `127.0.0.1` covers http and https on their default ports (80, 443), not http:8080: grant `127.0.0.1:8080`"),
            "{portless}"
        );
        let scheme = refusal(
            &patterns(&["https://api.example.com"]),
            &target("http://api.example.com/"),
        );
        assert!(
            scheme.contains("covers https on port 443, not http:80: grant `api.example.com`"),
            "{scheme}"
        );
        let v6 = refusal(&[], &target("http://[::1]:9000/"));
        assert!(v6.contains("grant `[::1]:9000`"), "{v6}");
    }
}
