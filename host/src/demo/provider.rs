//! The demo provider: an R4 FHIR server over the synthetic patients, with the
//! Patient search parameters the app uses. It is strict: an unknown search
//! parameter is a 400 OperationOutcome, so nothing the gateway sends is
//! silently ignored. For end-to-end tests and benchmarks it can also serve
//! more patients, answer slowly, record each request it sees, and require
//! bearer tokens from its own client-credentials token endpoint.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::data;
use crate::error::{Body, json_response, no_store};
use crate::fhir::outcome::outcome;
use crate::oauth::bearer_token;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// Page size when `_count` is absent, and the largest accepted.
const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;
/// The token endpoint, outside the FHIR base like a real authorization server.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Largest request body read, form or search.
const MAX_BODY: usize = 64 * 1024;

/// How the provider behaves beyond serving the default patients.
#[derive(Clone)]
pub struct ProviderOptions {
    /// Patients served; the first [`data::PATIENT_COUNT`] are always the same.
    pub patients: usize,
    /// Added before every answer except `/metadata`, to give benchmarks a
    /// provider with a known latency.
    pub delay: Duration,
    /// A file that gets one JSON line per request (appended, flushed before
    /// the answer), so tests can see what reached this provider.
    pub request_log: Option<PathBuf>,
    /// `(client_id, client_secret)`: when set, the provider runs its own token
    /// endpoint and every FHIR interaction but `/metadata` needs its tokens.
    pub client_credentials: Option<(String, String)>,
    /// Lifetime of the tokens issued.
    pub token_lifetime: Duration,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            patients: data::PATIENT_COUNT,
            delay: Duration::ZERO,
            request_log: None,
            client_credentials: None,
            // Five minutes: short, as providers' client-credentials tokens are.
            token_lifetime: Duration::from_secs(300),
        }
    }
}

/// Parses `ID:SECRET` (as given to `--client-credentials`); the secret may
/// itself contain `:`.
pub fn parse_client_credentials(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok((id.to_owned(), secret.to_owned())),
        _ => Err("expected CLIENT_ID:CLIENT_SECRET, both non-empty".to_owned()),
    }
}

struct Provider {
    base: String,
    patients: Vec<Value>,
    /// Patient id → index in `patients`.
    by_id: HashMap<String, usize>,
    delay: Duration,
    log: Option<Mutex<File>>,
    issuer: Option<Issuer>,
}

/// The provider's own authorization server: one client, opaque random tokens
/// kept in memory.
struct Issuer {
    client_id: String,
    secret_sha256: [u8; 32],
    lifetime: Duration,
    issued: Mutex<Issued>,
}

#[derive(Default)]
struct Issued {
    /// SHA-256 of each live token → when it expires; the tokens themselves
    /// are not kept.
    live: HashMap<[u8; 32], Instant>,
    /// Tokens issued since start.
    count: u64,
}

/// What the `Authorization` header of a request is, as the request log
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthSeen {
    /// No `Authorization` header.
    None,
    /// A bearer token this provider issued and that has not expired.
    Valid,
    /// Any other bearer token.
    Invalid,
    /// Another scheme (Basic on the token endpoint), or an unreadable value.
    Other,
}

impl AuthSeen {
    fn as_str(self) -> &'static str {
        match self {
            AuthSeen::None => "none",
            AuthSeen::Valid => "valid",
            AuthSeen::Invalid => "invalid",
            AuthSeen::Other => "other",
        }
    }
}

impl Provider {
    fn new(base: String, options: ProviderOptions) -> io::Result<Self> {
        let log = match &options.request_log {
            Some(path) => Some(Mutex::new(OpenOptions::new().create(true).append(true).open(path)?)),
            None => None,
        };
        let patients = data::patients_n(options.patients);
        let by_id =
            patients.iter().enumerate().filter_map(|(i, pt)| pt["id"].as_str().map(|id| (id.to_owned(), i))).collect();
        let issuer = options.client_credentials.map(|(client_id, secret)| Issuer {
            client_id,
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            lifetime: options.token_lifetime,
            issued: Mutex::default(),
        });
        Ok(Self { base, patients, by_id, delay: options.delay, log, issuer })
    }

    fn auth_seen(&self, headers: &HeaderMap) -> AuthSeen {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return AuthSeen::None;
        };
        match bearer_token(value) {
            Some(token) if self.issuer.as_ref().is_some_and(|i| i.is_live(token)) => AuthSeen::Valid,
            Some(_) => AuthSeen::Invalid,
            None => AuthSeen::Other,
        }
    }

    async fn delay(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// Appends one line to the request log. A failed write is reported and
    /// the request still answered: the log is for tests, the answer is not.
    fn record(&self, line: &Value) {
        let Some(log) = &self.log else { return };
        let mut text = line.to_string();
        text.push('\n');
        let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line: with O_APPEND, lines of concurrent requests (or
        // of a restarted provider on the same file) never interleave.
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(error = %e, "writing the request log failed");
        }
    }
}

impl Issuer {
    fn is_live(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.live.get(&digest).is_some_and(|expires| Instant::now() < *expires)
    }

    /// A new token; also forgets expired ones.
    fn issue(&self) -> String {
        let token = crate::oauth::clients::generate_secret();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.live.retain(|_, expires| now < *expires);
        issued.live.insert(digest, now + self.lifetime);
        issued.count += 1;
        token
    }

    fn tokens_issued(&self) -> u64 {
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Whether `id`/`secret` are this provider's client, comparing the secret
    /// in constant time.
    fn authenticates(&self, id: &str, secret: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let secret_ok: bool = self.secret_sha256.ct_eq(&presented).into();
        secret_ok && id == self.client_id
    }
}

/// Serves the provider on `listener` until the task is dropped; `base` is its
/// own absolute base URL (ending in `/fhir`), used in `fullUrl`s and links.
/// Fails only if the request log cannot be opened.
pub async fn serve(listener: TcpListener, base: String, options: ProviderOptions) -> io::Result<()> {
    let provider = Arc::new(Provider::new(base, options)?);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let p = provider.clone();
        let service = service_fn(move |req| {
            let p = p.clone();
            async move { Ok::<_, Infallible>(handle(&p, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, FHIR_JSON, outcome("error", code, message).to_string())
}

async fn handle(p: &Provider, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let auth = p.auth_seen(req.headers());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let line = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "auth": auth.as_str(),
        "x_request_id": request_id,
    });
    let fhir_path = path.strip_prefix("/fhir").filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let segments: Vec<&str> = fhir_path.unwrap_or("").trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let is_metadata = fhir_path.is_some() && segments == ["metadata"];

    if let (Some(issuer), TOKEN_PATH) = (&p.issuer, path.as_str()) {
        // Logged once answered, so the line can carry the count of tokens.
        p.delay().await;
        let resp = token_endpoint(issuer, req).await;
        let mut line = line;
        line["tokens_issued"] = json!(issuer.tokens_issued());
        p.record(&line);
        return resp;
    }
    // Logged on arrival: a request the client gives up on is still seen.
    p.record(&line);
    if !is_metadata {
        p.delay().await;
    }

    if fhir_path.is_none() {
        return error(StatusCode::NOT_FOUND, "not-found", "Unknown path.");
    }
    if p.issuer.is_some() && !is_metadata && auth != AuthSeen::Valid {
        let mut resp =
            error(StatusCode::UNAUTHORIZED, "login", "A bearer token from this provider's token endpoint is required.");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"demo-provider\", error=\"invalid_token\""),
        );
        return resp;
    }
    let is_form = is_form(req.headers());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "Body too large."),
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metadata"]) => json_response(StatusCode::OK, FHIR_JSON, capability(p).to_string()),
        (&Method::GET, ["Patient", id]) => match p.by_id.get(*id) {
            Some(&i) => json_response(StatusCode::OK, FHIR_JSON, p.patients[i].to_string()),
            None => error(StatusCode::NOT_FOUND, "not-found", &format!("Patient/{id} is not known.")),
        },
        (&Method::GET, ["Patient"]) => search(p, &query),
        (&Method::POST, ["Patient", "_search"]) if is_form || body.is_empty() => {
            let mut q = query;
            if !body.is_empty() {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(&String::from_utf8_lossy(&body));
            }
            search(p, &q)
        }
        (_, [t, ..]) if *t != "Patient" => {
            error(StatusCode::NOT_FOUND, "not-supported", &format!("The demo provider serves Patient only, not {t}."))
        }
        _ => error(StatusCode::BAD_REQUEST, "not-supported", "Unsupported interaction."),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// An RFC 6749 §5.2 error of the token endpoint.
enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    UnsupportedGrantType,
}

impl TokenError {
    fn response(&self) -> Response<Body> {
        let (status, code, description) = match self {
            TokenError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", *d),
            TokenError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed."),
            TokenError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only client_credentials is supported.")
            }
        };
        let body = json!({ "error": code, "error_description": description });
        let mut resp = no_store(json_response(status, "application/json", body.to_string()));
        if let TokenError::InvalidClient = self {
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"demo-provider\""));
        }
        resp
    }
}

/// `POST /oauth2/token` with `grant_type=client_credentials`, the client
/// authenticated by HTTP Basic or by `client_id`/`client_secret` in the body.
async fn token_endpoint(issuer: &Issuer, req: Request<Incoming>) -> Response<Body> {
    match issue_token(issuer, req).await {
        Ok(body) => no_store(json_response(StatusCode::OK, "application/json", body.to_string())),
        Err(e) => e.response(),
    }
}

async fn issue_token(issuer: &Issuer, req: Request<Incoming>) -> Result<Value, TokenError> {
    if req.method() != Method::POST {
        return Err(TokenError::InvalidRequest("The token endpoint takes POST."));
    }
    if !is_form(req.headers()) {
        return Err(TokenError::InvalidRequest("The body must be application/x-www-form-urlencoded."));
    }
    let mut authorization = req.headers().get_all(AUTHORIZATION).iter();
    let header = authorization.next().cloned();
    if authorization.next().is_some() {
        return Err(TokenError::InvalidRequest("More than one Authorization header."));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| TokenError::InvalidRequest("The body is too large."))?
        .to_bytes();
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        // RFC 6749 §3.2: parameters must not be repeated.
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(TokenError::InvalidRequest("A parameter is given more than once."));
        }
    }
    let (id, secret) = match header {
        Some(value) => {
            let value = value.to_str().map_err(|_| TokenError::InvalidClient)?;
            let (scheme, encoded) = value.split_once(' ').ok_or(TokenError::InvalidClient)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(TokenError::InvalidRequest("Authenticate the client with HTTP Basic or in the body."));
            }
            if params.contains_key("client_secret") {
                return Err(TokenError::InvalidRequest("Use HTTP Basic or client_secret in the body, not both."));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(TokenError::InvalidClient)?;
            let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
            (form_decode(id), form_decode(secret))
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return Err(TokenError::InvalidClient),
        },
    };
    if !issuer.authenticates(&id, &secret) {
        return Err(TokenError::InvalidClient);
    }
    match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
        None => return Err(TokenError::InvalidRequest("`grant_type` is missing.")),
    }
    let token = issuer.issue();
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": issuer.lifetime.as_secs(),
    }))
}

/// Form-urldecodes one value; a raw `&` (a client that did not encode) is
/// kept as it is.
fn form_decode(s: &str) -> String {
    let s = s.replace('&', "%26");
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn capability(p: &Provider) -> Value {
    let search_params: Vec<Value> = [
        ("_id", "token"),
        ("family", "string"),
        ("given", "string"),
        ("name", "string"),
        ("birthdate", "date"),
        ("gender", "token"),
        ("identifier", "token"),
    ]
    .iter()
    .map(|(name, ty)| json!({ "name": name, "type": ty }))
    .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": { "name": "fhirgate demo provider" },
        "implementation": { "description": "Synthetic R4 data", "url": p.base },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "resource": [{
                "type": "Patient",
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": search_params,
            }]
        }]
    })
}

/// How a string parameter matches (FHIR R4 §3.1.1.5.7).
#[derive(Clone, Copy)]
enum StringMatch {
    StartsWith,
    Contains,
    Exact,
}

fn string_matches(candidate: &str, wanted: &str, how: StringMatch) -> bool {
    match how {
        StringMatch::Exact => candidate == wanted,
        StringMatch::StartsWith => candidate.to_lowercase().starts_with(&wanted.to_lowercase()),
        StringMatch::Contains => candidate.to_lowercase().contains(&wanted.to_lowercase()),
    }
}

fn strs(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn name_parts<'a>(pt: &'a Value, part: &str) -> Vec<&'a str> {
    pt["name"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| match part {
            "any" => ["family", "given", "prefix", "suffix", "text"].iter().flat_map(|k| strs(&n[*k])).collect(),
            k => strs(&n[k]),
        })
        .collect()
}

type Filter = Box<dyn Fn(&Value) -> bool>;

fn search(p: &Provider, query: &str) -> Response<Body> {
    let mut filters: Vec<Filter> = Vec::new();
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut kept = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b.to_owned(), Some(m.to_owned())),
            None => (name.clone(), None),
        };
        let alternatives: Vec<String> = value.split(',').map(str::to_owned).collect();
        match (base.as_str(), modifier.as_deref()) {
            ("_count", None) => match value.parse::<usize>() {
                Ok(c) => count = c.min(MAX_COUNT),
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid", "`_count` must be a number."),
            },
            ("_offset", None) => match value.parse::<usize>() {
                Ok(o) => offset = o,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid", "`_offset` must be a number."),
            },
            ("_format" | "_pretty", _) => continue,
            ("_id", None) => filters.push(Box::new(move |pt| alternatives.iter().any(|a| pt["id"] == a.as_str()))),
            ("family" | "given" | "name", m) => {
                let how = match m {
                    None => StringMatch::StartsWith,
                    Some("contains") => StringMatch::Contains,
                    Some("exact") => StringMatch::Exact,
                    Some(other) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "not-supported",
                            &format!("Unsupported modifier `:{other}`."),
                        );
                    }
                };
                let part = if base == "name" { "any".to_owned() } else { base.clone() };
                filters.push(Box::new(move |pt| {
                    let parts = name_parts(pt, &part);
                    alternatives.iter().any(|a| parts.iter().any(|c| string_matches(c, a, how)))
                }));
            }
            ("birthdate", None) => {
                let mut tests = Vec::new();
                for a in &alternatives {
                    let (prefix, date) = match a.get(..2) {
                        Some(pre @ ("eq" | "ne" | "lt" | "le" | "gt" | "ge")) => (pre.to_owned(), a[2..].to_owned()),
                        _ => ("eq".to_owned(), a.clone()),
                    };
                    if !valid_date(&date) {
                        return error(StatusCode::BAD_REQUEST, "invalid", &format!("`{a}` is not a FHIR date."));
                    }
                    tests.push((prefix, date));
                }
                filters.push(Box::new(move |pt| {
                    let Some(b) = pt["birthDate"].as_str() else { return false };
                    tests.iter().any(|(pre, d)| {
                        let cmp = b.get(..d.len()).unwrap_or(b).cmp(d.as_str());
                        match pre.as_str() {
                            "eq" => cmp.is_eq(),
                            "ne" => !cmp.is_eq(),
                            "lt" => cmp.is_lt(),
                            "le" => cmp.is_le(),
                            "gt" => cmp.is_gt(),
                            _ => cmp.is_ge(),
                        }
                    })
                }));
            }
            ("gender", None) => {
                filters.push(Box::new(move |pt| alternatives.iter().any(|a| pt["gender"] == a.as_str())))
            }
            ("identifier", None) => filters.push(Box::new(move |pt| {
                alternatives.iter().any(|a| {
                    let (system, v) = match a.split_once('|') {
                        Some((s, v)) => (Some(s), v),
                        None => (None, a.as_str()),
                    };
                    pt["identifier"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|id| id["value"] == v && system.is_none_or(|s| s.is_empty() || id["system"] == s))
                })
            })),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    &format!("Unknown or unsupported search parameter `{name}`."),
                );
            }
        }
        if base != "_offset" {
            kept.push((name, value));
        }
    }
    let matches: Vec<&Value> = p.patients.iter().filter(|pt| filters.iter().all(|f| f(pt))).collect();
    let total = matches.len();
    let page: Vec<&Value> = matches.iter().skip(offset).take(count).copied().collect();
    let link = |off: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &kept {
            ser.append_pair(k, v);
        }
        if !kept.iter().any(|(k, _)| k == "_count") {
            ser.append_pair("_count", &count.to_string());
        }
        if off > 0 {
            ser.append_pair("_offset", &off.to_string());
        }
        format!("{}/Patient?{}", p.base, ser.finish())
    };
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if count > 0 && offset + count < total {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": format!("search-{:016x}", fxhash(query)),
        "meta": { "lastUpdated": "2026-01-15T09:30:00Z" },
        "type": "searchset",
        "timestamp": "2026-01-15T09:30:00Z",
        "total": total,
        "link": links,
        "entry": page.iter().map(|pt| json!({
            "fullUrl": format!("{}/Patient/{}", p.base, pt["id"].as_str().unwrap_or_default()),
            "resource": pt,
            "search": { "mode": "match" }
        })).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, FHIR_JSON, Bytes::from(bundle.to_string()))
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7),
        10 => digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
        _ => false,
    }
}

/// FNV-1a, for stable Bundle ids.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;

    use super::*;

    /// A provider served on a free port for one test; stopped when dropped.
    struct Served {
        addr: SocketAddr,
        base: String,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn start(options: ProviderOptions) -> Served {
        start_at(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Binds as `fhirgate provider` does.
    async fn start_at(addr: SocketAddr, options: ProviderOptions) -> Served {
        let (listener, addr) = crate::server::bind(addr).await.expect("binding the provider");
        let base = format!("http://{addr}/fhir");
        let task = tokio::spawn(serve(listener, base.clone(), options));
        Served { addr, base, task }
    }

    fn with_client(id: &str, secret: &str) -> ProviderOptions {
        ProviderOptions { client_credentials: Some((id.to_owned(), secret.to_owned())), ..Default::default() }
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        json: Value,
    }

    type HttpClient = Client<HttpConnector, Full<Bytes>>;

    fn client() -> HttpClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn send(client: &HttpClient, method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status: parts.status, headers: parts.headers, json }
    }

    async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
        send(&client(), Method::GET, url, headers, "").await
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    async fn token_request(p: &Served, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut all = vec![FORM];
        all.extend_from_slice(headers);
        send(&client(), Method::POST, &format!("http://{}{TOKEN_PATH}", p.addr), &all, body).await
    }

    /// `Basic` credentials encoded as RFC 6749 §2.3.1 asks.
    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
    }

    async fn token(p: &Served, id: &str, secret: &str) -> String {
        let a = token_request(p, &[], &format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        a.json["access_token"].as_str().unwrap().to_owned()
    }

    fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
        a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn client_credentials_argument() {
        assert_eq!(parse_client_credentials("app:s3:cret"), Ok(("app".into(), "s3:cret".into())));
        assert!(parse_client_credentials("app").is_err());
        assert!(parse_client_credentials(":secret").is_err());
        assert!(parse_client_credentials("app:").is_err());
    }

    #[tokio::test]
    async fn token_endpoint_issues_tokens_and_refuses_bad_requests() {
        // A secret with the characters §2.3.1 encoding exists for.
        let secret = "s3cr:et&+/ x";
        let p = start(with_client("app", secret)).await;

        let a = token_request(&p, &[("authorization", &basic("app", secret))], "grant_type=client_credentials").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        assert_eq!(a.json["token_type"], "Bearer");
        assert_eq!(a.json["expires_in"], 300);
        let first = a.json["access_token"].as_str().unwrap().to_owned();
        assert_eq!(first.len(), 43, "32 random bytes, base64url without padding");
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(header(&a, "cache-control"), "no-store");

        let body = format!(
            "grant_type=client_credentials&client_id=app&client_secret={}",
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let a = token_request(&p, &[], &body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        assert_ne!(a.json["access_token"].as_str().unwrap(), first);

        for (headers, body) in [
            (vec![], "grant_type=client_credentials&client_id=app&client_secret=wrong".to_owned()),
            (vec![], "grant_type=client_credentials&client_id=other&client_secret=s3cr".to_owned()),
            (vec![], "grant_type=client_credentials".to_owned()),
            (vec![("authorization", basic("app", "wrong"))], "grant_type=client_credentials".to_owned()),
        ] {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = token_request(&p, &headers, &body).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(a.json["error"], "invalid_client");
            assert_eq!(header(&a, "www-authenticate"), "Basic realm=\"demo-provider\"");
            assert_eq!(header(&a, "cache-control"), "no-store");
        }

        let auth = basic("app", secret);
        let a = token_request(&p, &[("authorization", &auth)], "grant_type=password").await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        for body in [
            "",
            "grant_type=client_credentials&grant_type=client_credentials",
            "grant_type=client_credentials&client_secret=x",
        ] {
            let a = token_request(&p, &[("authorization", &auth)], body).await;
            assert_eq!(
                (a.status, a.json["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_request")),
                "{body}"
            );
        }
        let url = format!("http://{}{TOKEN_PATH}", p.addr);
        let a = send(&client(), Method::POST, &url, &[("content-type", "application/json")], "{}").await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        let a = get(&url, &[]).await;
        assert_eq!((a.status, a.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    }

    #[tokio::test]
    async fn fhir_interactions_need_an_issued_unexpired_token() {
        let p = start(with_client("app", "secret")).await;
        let read = format!("{}/Patient/pat-001", p.base);

        assert_eq!(get(&format!("{}/metadata", p.base), &[]).await.status, StatusCode::OK);
        for headers in
            [vec![], vec![("authorization", "Bearer made-up")], vec![("authorization", "Basic YXBwOnNlY3JldA==")]]
        {
            let a = get(&read, &headers).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED);
            assert_eq!(header(&a, "www-authenticate"), "Bearer realm=\"demo-provider\", error=\"invalid_token\"");
            assert_eq!(a.json["resourceType"], "OperationOutcome");
        }

        let bearer = format!("Bearer {}", token(&p, "app", "secret").await);
        let a = get(&read, &[("authorization", &bearer)]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json["name"][0]["family"], "Chau");
        let a = get(&format!("{}/Patient?family=chau", p.base), &[("authorization", &bearer)]).await;
        assert_eq!((a.status, a.json["resourceType"].as_str()), (StatusCode::OK, Some("Bundle")));

        // A token whose lifetime is over is refused like an unknown one.
        let expired = start(ProviderOptions { token_lifetime: Duration::ZERO, ..with_client("app", "secret") }).await;
        let bearer = format!("Bearer {}", token(&expired, "app", "secret").await);
        let a = get(&format!("{}/Patient/pat-001", expired.base), &[("authorization", &bearer)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);

        // Without client credentials there is no token endpoint and no check.
        let open = start(ProviderOptions::default()).await;
        let a = token_request(&open, &[], "grant_type=client_credentials&client_id=app&client_secret=secret").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(get(&format!("{}/Patient/pat-001", open.base), &[]).await.status, StatusCode::OK);
    }

    fn log_lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn request_log_says_what_was_received_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let p = start(ProviderOptions { request_log: Some(log.clone()), ..with_client("app", "secret") }).await;

        get(&format!("{}/metadata", p.base), &[("x-request-id", "rid-1")]).await;
        let a = token_request(&p, &[("authorization", &basic("app", "secret"))], "grant_type=client_credentials").await;
        let issued = a.json["access_token"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {issued}");
        let url = format!("{}/Patient?family=chau&_count=5", p.base);
        assert_eq!(get(&url, &[("authorization", &bearer), ("x-request-id", "rid-2")]).await.status, StatusCode::OK);
        get(&url, &[("authorization", "Bearer someone-elses")]).await;
        get(&url, &[("authorization", "Basic YXBwOnNlY3JldA==")]).await;

        let lines = log_lines(&log);
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(
            lines[0],
            json!({ "method": "GET", "path": "/fhir/metadata", "query": "", "auth": "none", "x_request_id": "rid-1" })
        );
        assert_eq!(lines[1]["path"], TOKEN_PATH);
        assert_eq!(lines[1]["method"], "POST");
        assert_eq!(lines[1]["auth"], "other");
        assert_eq!(lines[1]["tokens_issued"], 1);
        assert_eq!(lines[1]["x_request_id"], Value::Null);
        assert_eq!(lines[2]["query"], "family=chau&_count=5");
        assert_eq!(lines[2]["auth"], "valid");
        assert_eq!(lines[2]["x_request_id"], "rid-2");
        assert_eq!(lines[3]["auth"], "invalid");
        assert_eq!(lines[4]["auth"], "other");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains(&issued) && !text.contains("someone-elses") && !text.contains("YXBw"));

        // A provider that issues nothing sees every bearer token as invalid,
        // and appends to the same file.
        let open = start(ProviderOptions { request_log: Some(log.clone()), ..Default::default() }).await;
        get(&format!("{}/Patient/pat-002", open.base), &[("authorization", &bearer)]).await;
        let lines = log_lines(&log);
        assert_eq!(lines.len(), 6);
        assert_eq!(
            (lines[5]["path"].as_str(), lines[5]["auth"].as_str()),
            (Some("/fhir/Patient/pat-002"), Some("invalid"))
        );
    }

    #[tokio::test]
    async fn delay_applies_to_all_but_metadata() {
        let delay = Duration::from_millis(500);
        let p = start(ProviderOptions { delay, ..Default::default() }).await;
        let started = Instant::now();
        assert_eq!(get(&format!("{}/Patient/pat-001", p.base), &[]).await.status, StatusCode::OK);
        assert!(started.elapsed() >= delay);
        let started = Instant::now();
        assert_eq!(get(&format!("{}/metadata", p.base), &[]).await.status, StatusCode::OK);
        assert!(started.elapsed() < delay);
    }

    #[tokio::test]
    async fn serves_as_many_patients_as_asked() {
        let p = start(ProviderOptions { patients: 200, ..Default::default() }).await;
        assert_eq!(get(&format!("{}/Patient/pat-200", p.base), &[]).await.status, StatusCode::OK);
        assert_eq!(get(&format!("{}/Patient/pat-201", p.base), &[]).await.status, StatusCode::NOT_FOUND);
        let a = get(&format!("{}/Patient?_count=100&_offset=100", p.base), &[]).await;
        assert_eq!(a.json["total"], 200);
        assert_eq!(a.json["entry"].as_array().unwrap().len(), 100);
        assert!(a.json["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"));
    }

    #[tokio::test]
    async fn restarts_on_the_same_address() {
        let mut first = start(ProviderOptions::default()).await;
        let addr = first.addr;
        // A connection accepted by the first provider stays open across the
        // restart, as a gateway's pooled one would.
        let pooled = client();
        let url = format!("{}/metadata", first.base);
        assert_eq!(send(&pooled, Method::GET, &url, &[], "").await.status, StatusCode::OK);
        first.task.abort();
        assert!((&mut first.task).await.unwrap_err().is_cancelled(), "the listener is closed");
        let second = start_at(addr, ProviderOptions::default()).await;
        assert_eq!(second.addr, addr);
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
        drop(pooled);
    }
}
