//! Test mode for outbound HTTP: recorded fixtures answer the agent's
//! requests in-process, so agent tests never touch the network.
//!
//! The allowlist still applies first (a test must catch a missing grant);
//! then the first fixture whose method, URL and optional body match answers.
//! A request no fixture matches is refused and remembered, so the test fails
//! and can print it (MSW's `onUnhandledRequest: "error"`).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The largest request body the fixture matcher reads.
const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// How much of an unhandled request's body is kept for the report.
const SHOWN_BODY: usize = 2048;

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFixture {
    /// What the request must look like.
    pub request: FixtureRequest,
    /// What answers it.
    pub response: FixtureResponse,
}

/// The match side of a fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// The method (any case); default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The full URL, query included, compared exactly.
    pub url: String,
    /// When given: a string must equal the body text; any other JSON value
    /// must be contained in the body parsed as JSON (objects by subset,
    /// everything else by equality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Texts that must each occur in the body: in its text as sent, or,
    /// for a JSON body, inside one of its strings (so quotes and newlines
    /// in a prompt need no JSON escaping). For requests whose bodies differ
    /// in ways a subset cannot pin down, such as a prompt inside a message.
    #[serde(
        default,
        rename = "bodyContains",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub body_contains: Vec<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// The answer side of a fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    /// Status code; default 200.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers. `content-type: application/json` is added for a
    /// JSON body unless given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is; any other JSON value is sent as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn default_status() -> u16 {
    200
}

/// A request no fixture answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnhandledRequest {
    /// Its method.
    pub method: String,
    /// Its URL.
    pub url: String,
    /// The start of its body, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl std::fmt::Display for UnhandledRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.url)?;
        if let Some(body) = &self.body {
            write!(f, " with body {body}")?;
        }
        Ok(())
    }
}

/// Fixtures shared by every invocation of one test: clones share the record
/// of unhandled requests.
#[derive(Debug, Clone, Default)]
pub struct HttpFixtures {
    fixtures: Arc<[HttpFixture]>,
    unhandled: Arc<Mutex<Vec<UnhandledRequest>>>,
    /// For a replay: which fixtures have answered (each answers once).
    used: Option<Arc<Mutex<Vec<bool>>>>,
}

impl HttpFixtures {
    /// Answers requests from `fixtures`, first match wins.
    pub fn new(fixtures: Vec<HttpFixture>) -> Self {
        HttpFixtures {
            fixtures: fixtures.into(),
            unhandled: Arc::default(),
            used: None,
        }
    }

    /// Answers requests from recorded exchanges, each once, in the order
    /// they were recorded: a replay, where the same request may have had
    /// different answers.
    pub fn once_each(fixtures: Vec<HttpFixture>) -> Self {
        HttpFixtures {
            used: Some(Arc::new(Mutex::new(vec![false; fixtures.len()]))),
            ..HttpFixtures::new(fixtures)
        }
    }

    /// The requests no fixture matched, in order.
    pub fn unhandled(&self) -> Vec<UnhandledRequest> {
        self.unhandled
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }

    /// Answers one request from the fixtures, or refuses it and remembers it.
    pub(crate) async fn answer(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let method = request.method().as_str().to_string();
        let url = request.uri().to_string();
        let body = Limited::new(request.into_body(), MAX_REQUEST_BODY)
            .collect()
            .await
            .map_err(|_| HttpError::HttpRequestBodySize(Some(MAX_REQUEST_BODY as u64)))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        let seen = SeenBody::new(&text);
        let mut used = self
            .used
            .as_ref()
            .map(|u| u.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let found = self.fixtures.iter().enumerate().find(|(i, f)| {
            used.as_ref()
                .is_none_or(|u| !u.get(*i).copied().unwrap_or(true))
                && f.request.method.eq_ignore_ascii_case(&method)
                && f.request.url == url
                && f.request
                    .body
                    .as_ref()
                    .is_none_or(|want| seen.matches(want))
                && seen.contains_all(&f.request.body_contains)
        });
        if let (Some((i, _)), Some(used)) = (found, used.as_mut())
            && let Some(slot) = used.get_mut(i)
        {
            *slot = true;
        }
        drop(used);
        let found = found.map(|(_, f)| f);
        let Some(fixture) = found else {
            let shown = (!body.is_empty()).then(|| text.chars().take(SHOWN_BODY).collect());
            tracing::debug!(%method, %url, "no HTTP fixture matches this request");
            if let Ok(mut list) = self.unhandled.lock() {
                list.push(UnhandledRequest {
                    method,
                    url,
                    body: shown,
                });
            }
            return Err(HttpError::InternalError(Some(
                "no HTTP fixture matches this request".into(),
            )));
        };
        respond(&fixture.response)
    }
}

/// A request body as the fixtures' matchers read it: its text, and its
/// JSON parsed once, when a matcher first needs it.
struct SeenBody<'a> {
    text: &'a str,
    json: OnceCell<Option<Value>>,
}

impl<'a> SeenBody<'a> {
    fn new(text: &'a str) -> Self {
        SeenBody {
            text,
            json: OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_str(self.text).ok())
            .as_ref()
    }

    /// `request.body`: a string equals the text; any other value is
    /// contained in the JSON.
    fn matches(&self, want: &Value) -> bool {
        match want {
            Value::String(s) => s == self.text,
            want => self.json().is_some_and(|got| json_contains(got, want)),
        }
    }

    /// `request.bodyContains`: each text occurs in the body as sent, or
    /// inside one of its JSON strings.
    fn contains_all(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|want| {
            self.text.contains(want.as_str())
                || self.json().is_some_and(|json| has_text(json, want))
        })
    }
}

/// Whether a string somewhere in `value` contains `want`.
fn has_text(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s.contains(want),
        Value::Array(items) => items.iter().any(|v| has_text(v, want)),
        Value::Object(map) => map.values().any(|v| has_text(v, want)),
        _ => false,
    }
}

/// Whether `got` contains `want`: objects by subset (recursively), other
/// values by equality.
pub fn json_contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| got.get(k).is_some_and(|g| json_contains(g, w))),
        _ => got == want,
    }
}

fn respond(r: &FixtureResponse) -> Result<http::Response<WasiBody>, HttpError> {
    let (body, json) = match &r.body {
        None => (Bytes::new(), false),
        Some(Value::String(s)) => (Bytes::from(s.clone()), false),
        Some(v) => (Bytes::from(v.to_string()), true),
    };
    let mut builder = http::Response::builder().status(r.status);
    for (name, value) in &r.headers {
        builder = builder.header(name, value);
    }
    if json
        && !r
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        builder = builder.header("content-type", "application/json");
    }
    let body = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|e| HttpError::InternalError(Some(format!("bad fixture response: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(method: &str, url: &str, body: &str) -> http::Request<WasiBody> {
        let body = Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::builder()
            .method(method)
            .uri(url)
            .body(body)
            .unwrap()
    }

    fn fixtures() -> HttpFixtures {
        HttpFixtures::new(serde_json::from_value(json!([
            { "request": { "url": "https://api.github.com/repos/a/b" },
              "response": { "body": { "stargazers_count": 7 } } },
            { "request": { "method": "post", "url": "https://api.openai.com/v1/chat/completions",
                           "body": { "model": "gpt-4o-mini" } },
              "response": { "status": 429, "headers": { "retry-after": "1" }, "body": "slow down" } }
        ])).unwrap())
    }

    async fn body_text(r: http::Response<WasiBody>) -> String {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_matching_request_gets_the_recorded_answer() {
        let f = fixtures();
        let r = f
            .answer(request("GET", "https://api.github.com/repos/a/b", ""))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(body_text(r).await, r#"{"stargazers_count":7}"#);

        let r = f
            .answer(request(
                "POST",
                "https://api.openai.com/v1/chat/completions",
                r#"{"model":"gpt-4o-mini","messages":[]}"#,
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(body_text(r).await, "slow down");
        assert!(f.unhandled().is_empty());
    }

    #[tokio::test]
    async fn unmatched_method_url_or_body_is_refused_and_remembered() {
        let f = fixtures();
        for (method, url, body) in [
            ("POST", "https://api.github.com/repos/a/b", ""),
            ("GET", "https://api.github.com/repos/a/c", ""),
            (
                "POST",
                "https://api.openai.com/v1/chat/completions",
                r#"{"model":"other"}"#,
            ),
        ] {
            assert!(f.answer(request(method, url, body)).await.is_err());
        }
        let unhandled = f.unhandled();
        assert_eq!(unhandled.len(), 3);
        assert_eq!(
            unhandled[2].to_string(),
            r#"POST https://api.openai.com/v1/chat/completions with body {"model":"other"}"#
        );
    }

    #[tokio::test]
    async fn body_contains_finds_texts_in_the_body_or_inside_its_json_strings() {
        let f = HttpFixtures::new(
            serde_json::from_value(json!([
                { "request": { "method": "POST", "url": "https://m/v1",
                               "bodyContains": ["<question>Why \"x\"?</question>", "Cite every claim"] },
                  "response": { "body": "a" } },
                { "request": { "method": "POST", "url": "https://m/v1", "bodyContains": ["plain text"] },
                  "response": { "body": "b" } }
            ]))
            .unwrap(),
        );
        let prompt = json!({"messages": [{"content": "<question>Why \"x\"?</question>\nCite every claim."}]});
        let r = f
            .answer(request("POST", "https://m/v1", &prompt.to_string()))
            .await
            .unwrap();
        assert_eq!(body_text(r).await, "a");
        let r = f
            .answer(request("POST", "https://m/v1", "some plain text body"))
            .await
            .unwrap();
        assert_eq!(body_text(r).await, "b");
        let only_one = json!({"messages": [{"content": "<question>Why \"x\"?</question>"}]});
        assert!(
            f.answer(request("POST", "https://m/v1", &only_one.to_string()))
                .await
                .is_err()
        );
        assert_eq!(f.unhandled().len(), 1);
    }

    #[test]
    fn containment_is_subset_for_objects_and_equality_otherwise() {
        let got = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        assert!(json_contains(&got, &json!({"b": {"d": "x"}})));
        assert!(!json_contains(&got, &json!({"b": {"c": [1]}})));
        assert!(!json_contains(&got, &json!({"z": null})));
        assert!(json_contains(&json!(3), &json!(3)));
    }
}
